"""Every GET of the registry refuses a query parameter it does not take (found 2026-12-07,
query42: only the ledger's reads did, since money42; ``GET /v1/models?al=true`` answered the
served list as if the whole catalog were asked, ``/mesh/nodes?modle=x`` the whole listing,
``/dashboard/api/series?snce=T`` the whole window). 400 ``unsupported_parameter``, the
unknown name its ``param``, every accepted one in the message (``registry/strict_query.py``);
each parameter a route documents, and each one its clients send (the CLI, the node, the
openai SDK, the dashboard's scripts), still answered. ``/healthz`` stays lenient (a
balancer's probe). The ledger's own reads: ``test_ledger_unknown_params.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.registry_identity import identity_query
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.dashboard.context import HERE
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.openapi import build_openapi
from LLM_Mesh.registry.strict_query import HAND_DOCUMENTED, MARK, QUERY_400
from tests.registry.helpers import ADMIN, Harness, registration, running
from tests.registry.test_ledger_unknown_params import READS as LEDGER_READS

HASH = "ab" * 32
OPERATOR = "operator"  # a header set by _auth: the operator's token

# each GET of the OpenAPI document (the ledger's aside), with the parameters it takes, the
# headers it needs, and what it answers them: only an unknown parameter makes it a 400
GETS: dict[str, tuple[dict[str, Any], str | None, int]] = {
    "/mesh/nodes": ({"all": "true"}, "admin", 200),
    "/mesh/models": ({}, None, 200),
    "/mesh/demand": ({}, None, 200),
    "/mesh/usage-audit": ({}, "admin", 200),
    "/mesh/identity": (identity_query("http://mesh", b"n" * 16), None, 200),
    "/v1/balance": ({}, None, 200),
    "/v1/earnings": ({"days": 3}, OPERATOR, 200),
    "/v1/pricing": ({}, None, 200),
    f"/v1/receipts/{HASH}": ({}, None, 404),  # no such receipt: found, not refused
    "/v1/models": ({"all": "true"}, None, 200),
    "/v1/models/gemma-3-270m": ({}, None, 200),
}
# the dashboard's data feeds its scripts fetch (outside the document)
FEEDS: dict[str, tuple[dict[str, Any], str | None, int]] = {
    "/dashboard/api/series": ({"since": 0}, None, 200),
    "/dashboard/api/nodes/node-a/history": ({}, None, 200),
    "/dashboard/api/verify": ({"seq": 1}, None, 200),
    "/dashboard/fragment/overview": ({}, None, 200),
    "/dashboard/fragment/nodes": ({}, None, 200),
    "/dashboard/fragment/nodes/node-a": ({}, None, 200),
    "/dashboard/fragment/models": ({}, None, 200),
    "/dashboard/fragment/ledger": ({}, None, 200),
    "/dashboard/fragment/operator": ({}, OPERATOR, 200),
}
LENIENT = {"/healthz"}  # a balancer's probe: a query it adds must not take a replica out


async def _ready(h: Harness) -> dict[str | None, dict[str, str]]:
    """A node, ledger entries and a checkpoint, an operator: the headers of each caller."""
    r = await h.client.post("/mesh/nodes", json=registration("node-a", ["gemma-3-270m"]))
    assert r.status_code == 200, r.text
    assert h.runtime.ledger is not None and h.runtime.checkpointer is not None
    await h.runtime.ledger.append([Transfer("grant", MINT, POOL, 10)])
    await h.runtime.checkpointer.checkpoint()
    token = await add_operator(h.store, "alice")
    return {None: {}, "admin": ADMIN, OPERATOR: {"Authorization": f"Bearer {token}"}}


def _path(route: str) -> str:
    """The route's template as the message says it (``/v1/models/{model_id}``)."""
    route = route.replace(HASH, "{receipt_hash}").replace("gemma-3-270m", "{model_id}")
    return route.replace("/node-a", "/{node_id}")


@pytest.mark.parametrize("table", [GETS, FEEDS], ids=["document", "dashboard"])
async def test_every_get_refuses_a_mistyped_parameter(
    tmp_path: Path, table: dict[str, tuple[dict[str, Any], str | None, int]]
) -> None:
    async with running(tmp_path, registry_url="http://mesh") as h:
        headers = await _ready(h)
        for path, (params, who, status) in table.items():
            good = await h.client.get(path, params=params, headers=headers[who])
            assert good.status_code == status, (path, good.text)
            bad = await h.client.get(path, params={**params, "bogus": "1"}, headers=headers[who])
            assert bad.status_code == 400, (path, bad.text)  # before the fix: `status`
            err = bad.json()["error"]
            assert err["code"] == "unsupported_parameter" and err["param"] == "bogus", err
            takes = sorted(params)
            said = "accepts only " + ", ".join(takes) if takes else "takes no query parameter"
            assert f"GET {_path(path)} {said}" in err["message"], (path, err["message"])


async def test_the_mistypes_of_the_report_are_refused(tmp_path: Path) -> None:
    """The three of the finding, and the parameters each route takes but no test above
    sends (``all=true`` of the listing, the admin's; ``node`` of the earnings)."""
    async with running(tmp_path) as h:
        headers = await _ready(h)
        for path, query in (("/v1/models", "al=true"), ("/mesh/nodes", "modle=x"),
                            ("/dashboard/api/series", "snce=0")):  # fmt: skip
            r = await h.client.get(f"{path}?{query}")
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"]["param"] == query.split("=")[0]
        listing = await h.client.get("/mesh/nodes", params={"all": "true"}, headers=ADMIN)
        assert listing.status_code == 200 and listing.json()["nodes"], listing.text
        # the node's own ask (node/earnings_query.py) and the CLI's (client.earnings)
        mine = {"node": "node-a", "days": 30}
        r = await h.client.get("/v1/earnings", params=mine, headers=headers[OPERATOR])
        assert r.status_code == 403 and r.json()["error"]["param"] == "node", r.text
        probe = await h.client.get("/healthz?probe=1")  # lenient, on purpose
        assert probe.status_code == 200, probe.text


async def test_the_openai_sdk_lists_and_retrieves(tmp_path: Path) -> None:
    """``client.models.list()`` and ``.retrieve()`` send no query (openai's SDK): answered."""
    openai = pytest.importorskip("openai")
    async with running(tmp_path) as h:
        await _ready(h)
        sdk = openai.AsyncOpenAI(api_key="x", base_url="http://mesh/v1", http_client=h.client)
        assert [m.id for m in (await sdk.models.list()).data] == ["gemma-3-270m"]
        assert (await sdk.models.retrieve("gemma-3-270m")).id == "gemma-3-270m"


def _script_queries() -> dict[str, set[str]]:
    """Each path the dashboard's scripts fetch with a query, and the names they send."""
    out: dict[str, set[str]] = {}
    for script in (HERE / "static").glob("*.js"):
        for line in script.read_text(encoding="utf-8").splitlines():
            m = re.search(r'\b(base|gateway) \+ "(/[^"?]+)\?(\w+)=', line)
            if m is not None:
                path = ("/dashboard" if m[1] == "base" else "") + m[2]
                out.setdefault(path, set()).update([m[3], *re.findall(r'"&(\w+)=', line)])
    return out


def test_every_query_the_dashboard_scripts_send_is_accepted() -> None:
    """The scripts' queries (``static/*.js``) are ones their routes accept (the ledger's
    reads and the data feeds above): a feed made strict never refuses its own page."""
    sent = _script_queries()
    assert sent["/dashboard/api/verify"] == {"seq"}  # the parse found them
    assert sent["/v1/ledger/proof/inclusion"] == {"index", "tree_size"}
    dashboard_js = (HERE / "static" / "dashboard.js").read_text(encoding="utf-8")
    assert '"?since="' in dashboard_js  # data-series (templates/overview.html) + ?since=
    sent["/dashboard/api/series"] = {"since"}
    accepted = {path: set(params) for path, (params, _who, _s) in FEEDS.items()}
    accepted |= {path: set(params) for path, params in LEDGER_READS.items()}
    for path, names in sent.items():
        assert names <= accepted[path], (path, names)


def test_the_document_says_it_of_every_get_but_the_health_probe() -> None:
    """The mark and its 400 on each GET of the document but ``/healthz``, and no other
    operation (POSTs unchecked); each marked one's documented query parameters are those
    the tests above send it (the hand-written ``/v1/models`` ones: :data:`HAND_DOCUMENTED`)."""
    app = create_registry_app(Settings(home=Path("/nonexistent")), store=MemoryStore())
    doc = build_openapi(app)
    marked = {(p, m) for p, ops in doc["paths"].items() for m, op in ops.items() if op.get(MARK)}
    gets = {(p, "get") for p, ops in doc["paths"].items() if "get" in ops}
    assert marked == gets - {(p, "get") for p in LENIENT}
    expected = {_path(p): set(a) for p, (a, _w, _s) in GETS.items()}
    expected |= {p: set(a) for p, a in LEDGER_READS.items()}
    expected["/v1/earnings"].add("node")  # sent by the next test (a 403: not alice's)
    for (path, _get), takes in HAND_DOCUMENTED.items():
        assert expected[path] == set(takes)
    for path, method in marked:
        op = doc["paths"][path][method]
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert names == expected[path], path
        bad = op["responses"]["400"]
        assert QUERY_400 in bad["description"]
        assert bad["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
