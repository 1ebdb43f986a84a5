"""The operator's view: only with a live operator token, sent as a bearer header; the
operator's nodes, their earnings (``registry/earnings.py``: settled ``settlements`` rows
and reward periods, written here as the settlement and reward code write them) and their
canary verdicts and quarantines."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from tests.inprocess_mesh import InProcessMesh
from tests.registry.canary_mesh import an_hour_later
from tests.registry.dashboard.conftest import MODEL
from tests.registry.helpers import running
from tests.registry.test_earnings import USER, reward_row, settle

PATH = "/dashboard/fragment/operator"


def _fragment(mesh: InProcessMesh, token: object) -> str:
    with mesh.sync_client() as c:
        r = c.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.text


def _table(body: str, name: str) -> str:
    start = body.index(f'data-table="{name}"')
    return body[start : body.index("</table>", start)]


def test_the_operator_sees_their_nodes(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    token = str(inprocess_mesh.operator_token)
    with inprocess_mesh.sync_client() as c:
        r = c.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert f'data-node="{node_id}"' in r.text
    rt = inprocess_mesh.app.state.runtime
    me = inprocess_mesh.call(pseudonyms(inprocess_mesh.call(rt.ledger.engine()))).operator(
        "inprocess"
    )
    assert me in r.text and pseudonym("operator", "inprocess") not in r.text  # keyed (2026-12-03)
    assert token not in r.text
    assert "not built yet" not in r.text
    # nothing earned and nothing probed yet: said so ("—" with a reason), never a zero
    assert 'data-earnings="none"' in r.text and 'data-verdicts="none"' in r.text
    row = r.text[r.text.index(f'data-node="{node_id}"') :]
    row = row[: row.index("</tr>")]
    earned = row[row.index('data-label="Earnings"') :]
    assert "nothing settled or rewarded for this node" in earned and "0.000000" not in earned
    assert 'data-figure="op-balance">0.000000 NT<' in r.text  # the balance exists: it is 0


def test_the_operator_sees_earnings_per_day_model_and_node(inprocess_mesh: InProcessMesh) -> None:
    """Settled requests (after the fee) by the day they settled and by model, uptime rewards
    by day, each node's total in its row; another operator's and unsettled ones not counted."""
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    rt = inprocess_mesh.app.state.runtime
    now = datetime.fromtimestamp(rt.wall_clock(), timezone.utc)
    yesterday = now - timedelta(days=1)
    keyed = inprocess_mesh.call(pseudonyms(inprocess_mesh.call(rt.ledger.engine())))
    ME, other = keyed.operator("inprocess"), keyed.operator("someone-else")

    async def fill() -> None:
        await rt.ledger.append([Transfer("grant", MINT, USER, 10_000_000)])
        await settle(rt.ledger, "r1", node_id=node_id, operator=ME, model=MODEL,
                     amount=1_000_000, fee=50_000, at=yesterday)  # fmt: skip
        await settle(rt.ledger, "r2", node_id=node_id, operator=ME, model="other-model",
                     amount=2_000_000, fee=100_000, at=now)  # fmt: skip
        await settle(rt.ledger, "r3", node_id=node_id, operator=ME, model=MODEL,
                     amount=7_000_000, fee=0, at=now, state="reserved")  # fmt: skip
        await settle(rt.ledger, "r4", node_id="node-theirs", operator=other, model=MODEL,
                     amount=5_000_000, fee=0, at=now)  # fmt: skip
        await reward_row(rt.ledger, node_id, ME, now.replace(minute=0, second=0), 300_000)

    inprocess_mesh.call(fill())
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    # 0.95 + 1.9 from requests, 0.3 in rewards
    assert 'data-figure="op-total">3.150000<' in body
    days = _table(body, "earnings-day")
    d1, d2 = yesterday.date().isoformat(), now.date().isoformat()
    assert re.search(rf'data-day="{d1}">.*?>0.950000<.*?>0.050000<.*?>0.000000<.*?>0.950000<', days)
    assert re.search(rf'data-day="{d2}">.*?>1.900000<.*?>0.100000<.*?>0.300000<.*?>2.200000<', days)
    models = _table(body, "earnings-model")
    assert re.search(rf'data-model="{MODEL}">.*?>1<.*?>0.950000<', models)
    assert re.search(r'data-model="other-model">.*?>1<.*?>1.900000<', models)
    assert "7.000000" not in body and "5.000000" not in body and "node-theirs" not in body
    row = body[body.index(f'data-node="{node_id}"') :]
    assert re.search(r'data-cell="earned"[^>]*>3.150000 NT<', row[: row.index("</tr>")])
    # the balance is the account's on the ledger: both settles' operator shares and the reward
    assert 'data-figure="op-balance">3.150000 NT<' in body
    # the public pages show each node's total over the window (the ledger's figures), not
    # the operator's per-day and per-model breakdown nor another operator's figures
    with inprocess_mesh.sync_client() as c:
        for path in ("/dashboard/fragment/nodes", f"/dashboard/fragment/nodes/{node_id}"):
            public = c.get(path).text
            assert re.search(r'data-cell="earned"[^>]*>3.150000 NT<', public), path
            assert "earnings-day" not in public and "op-balance" not in public, path


def test_the_operator_sees_canary_verdicts_and_quarantines(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    quality = inprocess_mesh.app.state.runtime.quality
    inprocess_mesh.call(quality.record(node_id, MODEL, ok=True, reason=None))
    inprocess_mesh.call(quality.record(node_id, MODEL, ok=False, reason="logprob off by 3.2 <b>"))
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    row = _table(body, "verdicts")  # the quarantine at once, the tally from the next hour
    assert "logprob off by 3.2 &lt;b&gt;" in row and 'data-label="Passed" class="num">0<' in row
    an_hour_later(quality)
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    verdicts = _table(body, "verdicts")
    row = verdicts[verdicts.index(f'data-verdict="{node_id} {MODEL}"') :]
    assert re.search(r'data-label="Passed" class="num">1<.*data-label="Failed" class="num">1<', row)
    assert "logprob off by 3.2 &lt;b&gt;" in row and "<b>" not in row.split("</tr>")[0]
    assert f'data-quarantined="{MODEL}"' in body  # the model in the node's row


def test_another_operator_sees_none_of_them(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    other = inprocess_mesh.call(add_operator(inprocess_mesh.store, "someone-else"))
    with inprocess_mesh.sync_client() as c:
        r = c.get(PATH, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 200 and node_id not in r.text
    assert "someone-else" in r.text


def test_no_wrong_or_revoked_token_gets_in(inprocess_mesh: InProcessMesh) -> None:
    token = str(inprocess_mesh.operator_token)
    with inprocess_mesh.sync_client() as c:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer nope"},
                        {"Authorization": f"Basic {token}"}):  # fmt: skip
            r = c.get(PATH, headers=headers)
            assert r.status_code == 401, headers
            assert r.json()["error"]["type"] == "invalid_request_error" or r.json()["error"]["code"]
        inprocess_mesh.call(
            inprocess_mesh.store.revoke_operator("inprocess", datetime.now(timezone.utc))
        )
        r = c.get(PATH, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


def test_token_guessing_is_limited_per_address(inprocess_mesh: InProcessMesh) -> None:
    """Each look-up is a store query: 30 a minute per address, then 429."""
    with inprocess_mesh.sync_client() as c:
        codes = [c.get(PATH, headers={"Authorization": f"Bearer guess-{i}"}).status_code
                 for i in range(31)]  # fmt: skip
        assert codes[:30] == [401] * 30
        assert codes[30] == 429
        r = c.get(PATH, headers={"Authorization": f"Bearer {inprocess_mesh.operator_token}"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_token_guessing_from_rotating_ipv6_addresses_is_limited_per_64(
    tmp_path: Path,
) -> None:
    """One new IPv6 address of one /64 per guess is still one client (before: unlimited)."""
    async with running(tmp_path) as h:
        codes = []
        for i in range(31):
            transport = httpx.ASGITransport(app=h.app, client=(f"2001:db8:7::{i + 1:x}", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
                r = await c.get(PATH, headers={"Authorization": f"Bearer guess-{i}"})
                codes.append(r.status_code)
        assert codes[:30] == [401] * 30 and codes[30] == 429


def test_the_operator_sees_the_requests_their_nodes_served_unpaid(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Requests not charged (their receipts could not carry the charges: ``registry/
    unpaid.py``) are said, per node, model and reason, escaped; another operator's are not
    (money43: never told before)."""
    from LLM_Mesh.registry.store_unpaid import Unpaid

    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    rt = inprocess_mesh.app.state.runtime
    day = datetime.fromtimestamp(rt.wall_clock(), timezone.utc).date().isoformat()
    why = "its payer's account kind '<x>' is not one a receipt can name"  # (a reason with text)
    rows = [Unpaid(f"r{i}", node_id, MODEL, why, day) for i in range(3)]
    inprocess_mesh.call(rt.store.record_unpaid([*rows, Unpaid("s", "theirs", MODEL, "no", day)]))
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    said = body[body.index('data-earnings="unpaid"') :]
    said = said[: said.index("</p>")]
    assert "3 requests served unpaid" in said and f"<code>{node_id}</code>" in said
    assert "&lt;x&gt;" in said and "<x>" not in said and "theirs" not in said


def _row(body: str, attr: str) -> str:
    row = body[body.index(attr) :]
    return row[: row.index("</tr>")]


def test_the_operator_sees_which_of_their_nodes_are_revoked(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-07 (hygiene45): ``llm-mesh earnings`` and ``GET /v1/earnings`` said a
    revoked node was revoked, the operator view listed it as any other (OFFLINE reads like
    a node switched off). Its row, the list of nodes this gateway does not know now and its
    canary verdicts say "revoked" in words (the store's flag: ``Store.operator_node_keys``),
    a live node's do not."""
    for model in (MODEL, "m-gone", "m-live"):
        inprocess_mesh.add_node(model)
    bad, gone, live = (inprocess_mesh.id_of(f"node-{m}") for m in (MODEL, "m-gone", "m-live"))
    rt = inprocess_mesh.app.state.runtime
    inprocess_mesh.call(rt.quality.record(bad, MODEL, ok=True, reason=None))
    inprocess_mesh.call(rt.quality.record(bad, MODEL, ok=False, reason="off"))
    inprocess_mesh.call(rt.quality.record(live, "m-live", ok=False, reason="off"))
    now = datetime.now(timezone.utc)
    for node_id in (bad, gone):
        assert inprocess_mesh.call(rt.store.revoke_node(node_id, now))
    inprocess_mesh.stop_node("node-m-gone")
    rt.table.forget(gone)  # known to the store only
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    row = _row(body, f'data-node="{bad}"')
    assert re.search(r"<th scope=\"row\">.*<span class=\"tag bad\" data-revoked[^>]*>revoked<", row)
    assert "revoked" not in _row(body, f'data-node="{live}"')
    said = body[body.index('data-offline="') :]
    said = said[: said.index("</p>")]
    assert f"<code>{gone}</code> (revoked)" in said, said
    verdicts = _table(body, "verdicts")
    assert ">revoked<" in _row(verdicts, f'data-verdict="{bad} {MODEL}"')
    assert "revoked" not in _row(verdicts, f'data-verdict="{live} m-live"')
