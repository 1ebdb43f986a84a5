"""Every dashboard page and fragment renders from the running gateway, escapes what it
shows, shows no secret, and says "not built yet" rather than a zero."""

from __future__ import annotations

import re

import pytest

from LLM_Mesh.registry.dashboard.security import CSP
from tests.inprocess_mesh import InProcessMesh
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
        r = c.get("/dashboard/nodes/node-nobody")
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


def test_a_node_row_shows_its_requests_and_what_is_not_built(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    chat(inprocess_mesh, 2)
    _s, body, _h = get(inprocess_mesh, "/dashboard/fragment/nodes")
    row = body[body.index(f'data-node="{node_id}"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r'data-cell="served-1h">2<', row)
    assert re.search(r'data-cell="requests">2', row)
    # trust and earnings do not exist yet: said so, not a zero
    assert row.count(">not built yet<") == 2
    assert "simulated" in row


def test_a_view_field_from_a_later_version_is_shown(inprocess_mesh: InProcessMesh) -> None:
    """Trust comes from the canary checks (another issue): once a node view carries
    ``trust_score`` the table shows it instead of "not built yet"."""
    from LLM_Mesh.registry.dashboard.views import _node_row

    row = _node_row({"node_id": "n", "max_concurrency": 2, "in_flight": 1, "queued": 2,
                     "trust_score": 0.93}, 5)  # fmt: skip
    assert row["trust"] == 0.93
    assert (row["load_now"], row["capacity"], row["load_pct"]) == (3, 2, 100)
    assert _node_row({"node_id": "n"}, None)["trust"] is None


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
    assert f'<option value="python" data-model="{MODEL}">python → {MODEL}</option>' in body


def test_ledger_page_lists_entries_and_checkpoints(inprocess_mesh: InProcessMesh) -> None:
    _s, empty, _h = get(inprocess_mesh, "/dashboard/fragment/ledger")
    assert "no entries yet" in empty and "No checkpoint is signed yet" in empty
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
