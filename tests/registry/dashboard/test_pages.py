"""Every dashboard page and fragment renders from the running gateway, escapes what it
shows, shows no secret, shows each node's trust, canary tally and quarantines, and says
"—" (with a title saying why) rather than a zero where there is no data."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from LLM_Mesh.registry.dashboard.security import CSP
from tests.inprocess_mesh import InProcessMesh
from tests.registry.canary_mesh import an_hour_later
from tests.registry.dashboard.conftest import MODEL, chat, ledger_entries

PAGES = ["/dashboard/", "/dashboard/nodes", "/dashboard/models", "/dashboard/ledger",
         "/dashboard/playground", "/dashboard/operator"]  # fmt: skip
FRAGMENTS = ["/dashboard/fragment/overview", "/dashboard/fragment/nodes",
             "/dashboard/fragment/models", "/dashboard/fragment/ledger"]  # fmt: skip


def get(mesh: InProcessMesh, path: str, **kw: object) -> tuple[int, str, dict[str, str]]:
    with mesh.sync_client() as c:
        r = c.get(path, **kw)  # type: ignore[arg-type]
        return r.status_code, r.text, dict(r.headers)


def test_every_page_and_fragment_renders_with_the_strict_headers(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    chat(inprocess_mesh, 2)
    ledger_entries(inprocess_mesh, 2)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    for path in [*PAGES, *FRAGMENTS, f"/dashboard/nodes/{node_id}",
                 f"/dashboard/fragment/nodes/{node_id}"]:  # fmt: skip
        status, body, headers = get(inprocess_mesh, path)
        assert status == 200, (path, body[:500])
        assert headers["content-type"].startswith("text/html")
        assert headers["content-security-policy"] == CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        # nothing inline for the policy to refuse: scripts by src only, no style or handler attributes
        assert not re.search(r"<script(?![^>]*\ssrc=)", body), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", body, re.I), path
        # no CDN: every script, style, image and link is the gateway's own (relative)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", body), path


def test_dashboard_without_slash_redirects_and_unknown_pages_are_404(
    inprocess_mesh: InProcessMesh,
) -> None:
    with inprocess_mesh.sync_client() as c:
        r = c.get("/dashboard")
        assert r.status_code == 307 and r.headers["location"] == "/dashboard/"
        r = c.get("/dashboard/no-such-page")
        assert r.status_code == 404 and "no such dashboard page" in r.text
        assert r.headers["content-security-policy"] == CSP
        r = c.get("/dashboard/nodes/node-" + "b" * 26)  # well formed; no such node
        assert r.status_code == 404 and "does not know this node" in r.text
        r = c.get("/dashboard/static/dashboard.js")
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=300"
        assert r.headers["content-security-policy"] == CSP and "etag" in r.headers


def test_the_overview_counts_what_the_gateway_served(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    _s, before, _h = get(inprocess_mesh, "/dashboard/fragment/overview")
    assert 'data-figure="requests-hour">0<' in before
    chat(inprocess_mesh, 3)
    chat(inprocess_mesh, 1, stream=True)
    _s, after, _h = get(inprocess_mesh, "/dashboard/fragment/overview")
    assert 'data-figure="requests-hour">4<' in after
    assert 'data-state="online">1<' in after
    assert 'data-figure="models-up">1 ' in after
    assert "simulated" in after  # the sim node is labelled


def _row(body: str, node_id: str) -> str:
    row = body[body.index(f'data-node="{node_id}"') :]
    return row[: row.index("</tr>")]


def _cell(row: str, label: str) -> str:
    cell = row[row.index(f'data-label="{label}"') :]
    return cell[: cell.index("</td>")]


def test_a_node_row_shows_its_requests_trust_and_no_made_up_zeros(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    chat(inprocess_mesh, 2)
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/nodes")
    row = _row(body, node_id)
    assert re.search(r'data-cell="served-1h">2<', row)
    assert re.search(r'data-cell="requests">2', row)
    assert "simulated" in row
    # the trust score is the registry's (/mesh/nodes): never probed, so canary 0.5, below 0.6
    with inprocess_mesh.sync_client() as c:
        view = next(n for n in c.get("/mesh/nodes").json()["nodes"] if n["node_id"] == node_id)
    trust = _cell(row, "Trust")
    assert f'data-cell="trust">{view["trust_score"]:.2f}<' in trust and "below threshold" in trust
    # no probe yet: no tally ("—" with why), not "0 passed"
    canary = _cell(row, "Canary probes")
    assert "data-none>—<" in canary and "no canary probe has checked this node yet" in canary
    assert "passed" not in canary
    earned = _cell(row, "Earnings")  # nothing settled or rewarded yet: "—" with why
    assert "data-none>—<" in earned and "nothing settled or rewarded" in earned
    for path in [*PAGES, *FRAGMENTS, f"/dashboard/nodes/{node_id}"]:
        assert "not built yet" not in get(inprocess_mesh, path)[1], path


def test_canary_tally_and_quarantine_with_its_reason(inprocess_mesh: InProcessMesh) -> None:
    """A passed probe counts; a failed one quarantines the node for that model: its row and
    its page say so, with the reason, and the trust score drops to 0."""
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    quality = inprocess_mesh.app.state.runtime.quality
    inprocess_mesh.call(quality.record(node_id, MODEL, ok=True, reason=None))
    an_hour_later(quality)  # the public sees the tally of the hour before
    row = _row(get(inprocess_mesh, "/dashboard/fragment/nodes")[1], node_id)
    assert 'data-cell="canary">1 passed · 0 failed<' in row
    assert 'data-cell="trust">0.67<' in _cell(row, "Trust") and "trusted" in _cell(row, "Trust")
    assert "data-quarantined" not in row

    inprocess_mesh.call(quality.record(node_id, MODEL, ok=False, reason="token 3 differs"))
    row = _row(get(inprocess_mesh, "/dashboard/fragment/nodes")[1], node_id)
    assert "1 passed · " in row and '<span class="bad">1 failed</span>' in row
    assert 'data-cell="trust">0.00<' in row and "quarantined" in _cell(row, "Trust")
    models = _cell(row, "Models")
    assert f'data-quarantined="{MODEL}"' in models and "token 3 differs" in models
    _s, page, _h = get(inprocess_mesh, f"/dashboard/fragment/nodes/{node_id}")
    verdict = page[page.index(f'data-verdict="{MODEL}"') :]
    verdict = verdict[: verdict.index("</li>")]
    assert "1 passed, 1 failed" in verdict and "quarantined since" in verdict
    assert "token 3 differs" in verdict
    assert "canary 0.00 × success" in page  # the score's parts

    inprocess_mesh.call(quality.clear(node_id))  # the admin lifts it
    row = _row(get(inprocess_mesh, "/dashboard/fragment/nodes")[1], node_id)
    assert "data-quarantined" not in row and "quarantined" not in _cell(row, "Trust")


def test_without_quality_data_trust_is_a_dash_with_why(inprocess_mesh: InProcessMesh) -> None:
    from LLM_Mesh.registry.dashboard.views import _node_row

    row = _node_row({"node_id": "n", "max_concurrency": 2, "in_flight": 1, "queued": 2}, 5)
    assert (row["load_now"], row["capacity"], row["load_pct"]) == (3, 2, 100)
    assert row["trust_score"] is None and row["canary_passed"] is None and not row["probed"]
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    inprocess_mesh.app.state.runtime.quality = None
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/nodes")
    trust = _cell(_row(body, node_id), "Trust")
    assert "data-none>—<" in trust and "keeps no quality data" in trust
    _s, page, _h = get(inprocess_mesh, f"/dashboard/nodes/{node_id}")
    assert _s == 200 and "keeps no quality data" in page and "0.00" not in page


def test_hostile_names_are_escaped_everywhere(inprocess_mesh: InProcessMesh) -> None:
    """A node chooses its region and its custom models' ids: the pages escape them."""
    evil_model = '<img src=x onerror="alert(1)">'
    evil_region = "<script>alert(2)</script>"
    inprocess_mesh.add_node([evil_model], "evil", region=evil_region)
    node_id = inprocess_mesh.id_of("evil")
    for path in [*PAGES, *FRAGMENTS, f"/dashboard/nodes/{node_id}"]:
        _s, body, _h = get(inprocess_mesh, path)
        assert "<script>alert" not in body and "<img src=x" not in body, path
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/nodes")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in body


@pytest.mark.parametrize(
    "said",
    [
        "\u202emoc.elpmaxe-live at again in log",  # a right-to-left override
        "Your node is revoked: re-register at evil.example with your operator token",
        "x" * 4000,
    ],
)
def test_a_link_to_a_node_page_cannot_put_its_own_text_on_it(
    inprocess_mesh: InProcessMesh, said: str
) -> None:
    """``/dashboard/nodes/<anything>`` for a node nobody has: a node id is ``node-`` and
    26 base32 letters (from its key), so no text of a link's author is shown (found
    2026-12-05: the page's heading and title said whatever the link said, bidi overrides
    and any length, on the gateway's own page)."""
    s, body, _h = get(inprocess_mesh, "/dashboard/nodes/" + quote(said, safe=""))
    assert said[:40] not in body
    assert s == 404 and "There is no such node" in body
    s, body, _h = get(inprocess_mesh, "/dashboard/nodes/node-" + "a" * 26)  # well formed
    assert s == 404 and "node-" + "a" * 26 in body and "does not know this node" in body


def test_no_secret_on_any_page(inprocess_mesh: InProcessMesh) -> None:
    """Node URLs and hardware are the operators' (only the admin's /mesh/nodes has them);
    the admin key and operator tokens never reach a page."""
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    settings = inprocess_mesh.settings
    admin_key = (settings.home / "admin.key").read_text().strip()
    secrets = [
        inprocess_mesh.nodes[f"node-{MODEL}"].url,
        ".nodes.test",
        admin_key,
        str(inprocess_mesh.operator_token),
        "cpu_count",
        "memory_bytes",
    ]
    for path in [*PAGES, *FRAGMENTS, f"/dashboard/nodes/{node_id}",
                 f"/dashboard/fragment/nodes/{node_id}"]:  # fmt: skip
        _s, body, _h = get(inprocess_mesh, path)
        for s in secrets:
            assert s not in body, (path, s)


def test_models_page_demand_and_unserved_catalog(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    chat(inprocess_mesh, 1)
    with inprocess_mesh.sync_client() as c:  # a catalog model nobody serves: refused
        r = c.post("/v1/chat/completions",
                   json={"model": "mistral-7b", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert r.status_code == 503
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/models")
    served = body[: body.index("served by nobody yet")]
    unserved = body[body.index("served by nobody yet") :]
    assert f'data-model="{MODEL}"' in served
    # refused for want of a node: listed with the served (wanted), not as merely unserved
    assert 'data-model="mistral-7b"' in served
    row = served[served.index('data-model="mistral-7b"') :]
    assert re.search(r'data-cell="refused">1 \(1 / 0\)', row[: row.index("</tr>")])
    assert 'data-unserved="starcoder-15b"' in unserved
    assert f'data-unserved="{MODEL}"' not in unserved


def test_playground_offers_served_models_and_task_types(inprocess_mesh: InProcessMesh) -> None:
    _s, empty, _h = get(inprocess_mesh, "/dashboard/playground")
    assert "no model is up" in empty
    inprocess_mesh.add_node(MODEL)
    _s, body, _h = get(inprocess_mesh, "/dashboard/playground")
    assert f'<option value="{MODEL}">{MODEL} (simulated)</option>' in body
    assert (
        f'<option value="python" data-model="{MODEL}">python → {MODEL} (simulated)</option>' in body
    )


def test_ledger_page_lists_entries_and_checkpoints(inprocess_mesh: InProcessMesh) -> None:
    _s, empty, _h = get(inprocess_mesh, "/dashboard/fragment/ledger")
    assert "no entries yet" in empty and "No checkpoint is signed yet" in empty
    # the registry's own checkpointer would sign the 4th entry too when its loop wakes:
    # stopped here (nothing is unsigned yet), the test signs only where it says
    inprocess_mesh.call(inprocess_mesh.app.state.runtime.checkpointer.stop())
    ledger_entries(inprocess_mesh, 3)
    ledger_entries(inprocess_mesh, 1, checkpoint=False)
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/ledger")
    assert 'data-figure="tree-size">4<' in body
    assert "Latest signed checkpoint: size <b>3</b>" in body
    assert body.index('data-seq="3"') < body.index('data-seq="0"')  # newest first
    assert "1.000002" in body  # micro-NetworkTokens shown exactly as NT
    assert 'data-verify="2"' in body


@pytest.mark.parametrize("micro,text", [(1, "0.000001"), (1_500_000, "1.500000"),
                                        (-2_000_001, "-2.000001"), (10**18 + 7, "1000000000000.000007")])  # fmt: skip
def test_amounts_are_exact(micro: int, text: str) -> None:
    from LLM_Mesh.registry.dashboard.views import amount_nt

    assert amount_nt(micro) == text


def test_a_long_node_table_is_cut_and_says_so(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    from LLM_Mesh.registry.dashboard import views

    for name in ("a", "b", "c"):
        inprocess_mesh.add_node(MODEL, name)
    inprocess_mesh.stop_node("b")  # said goodbye: offline, listed after the healthy ones
    monkeypatch.setattr(views, "MAX_ROWS", 2)
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/nodes")
    assert "(the first 2 of 3)" in body
    assert body.count("<tr data-node=") == 2
    assert f'data-node="{inprocess_mesh.id_of("b")}"' not in body
    _s, over, _h = get(inprocess_mesh, "/dashboard/fragment/overview")
    assert 'data-figure="nodes-healthy">2 <small>of 3' in over
    assert 'data-state="offline">1<' in over


def test_every_dash_on_the_nodes_page_says_why(inprocess_mesh: InProcessMesh) -> None:
    """The page says "—" means no data, hover it for why (found 2026-12-05 in the walk: a
    node with no region and no timed request showed bare dashes in Region, Latency and
    TTFT, with no title; the overview's latency cards the same before any request)."""
    inprocess_mesh.add_node(MODEL, region=None)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    with inprocess_mesh.sync_client() as c:
        nodes = c.get("/dashboard/fragment/nodes").text
        overview = c.get("/dashboard/fragment/overview").text
    row = nodes[nodes.index(f'data-node="{node_id}"') :]
    row = row[: row.index("</tr>")]
    for label in ("Region", "Latency (EWMA)", "TTFT (EWMA)"):
        cell = row[row.index(f'data-label="{label}"') :]
        cell = cell[: cell.index("</td>")]
        assert re.search(r'title="[^"]+" data-none>—<', cell), (label, cell)
    for figure in ("latency-p50", "latency-p95", "ttft-p50", "ttft-p95"):
        shown = overview[overview.index(f'data-figure="{figure}"') :]
        assert re.match(r'data-figure="[\w-]+">(<small>)?<span class="none" title="[^"]+" data-none>—<',
                        shown), (figure, shown[:200])  # fmt: skip
    # a bare "—" nowhere in either fragment
    assert not re.search(r">—<", re.sub(r'title="[^"]+" data-none>—<', "", nodes + overview))
