"""What anyone on the internet reads without a key: the public ledger and the dashboard.

Attacks of the 2026-12-03 review of the public surfaces (docs/security.md, "Public
listings" and "Dashboard"): each test names what it did before its fix.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh import bounded_http
from LLM_Mesh.cli import ledger_http
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry import ledger_api
from LLM_Mesh.registry.dashboard import views
from LLM_Mesh.registry.parse import client_ledger_id
from LLM_Mesh.registry.routing import Routing
from tests.registry.helpers import ADMIN, Harness, running
from tests.registry.test_charge import BODY, CHAT, bearer, new_user, register, settlement

# what a client's own request ids often are: its trace ids, naming its users and records
CLIENT_ID = "acme-crm/alice.smith@example.com/invoice-4711"
OTHER_ID = "acme-crm/alice.smith@example.com/invoice-4712"


async def test_a_clients_own_request_id_is_not_published_in_the_ledger(tmp_path: Path) -> None:
    """A client's ``X-Request-Id`` / ``Idempotency-Key`` is the request's id for the client
    (its answer, its receipt), never text in the public ledger: the ledger's id for it is
    a hash of it and a random suffix, which the answer names (``mesh.ledger_request_id``).
    Found 2026-12-03: the id's first 96 bytes were the ledger entries' ``request_id``, shown
    to anyone by ``GET /v1/ledger``, the export and the dashboard's Ledger page."""
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _account = await new_user(h, 10_000)
        for header, cid in (("X-Request-Id", CLIENT_ID), ("Idempotency-Key", OTHER_ID)):
            r = await h.client.post(CHAT, json=BODY, headers={**bearer(key), header: cid})
            assert r.status_code == 200, r.text
            mesh = r.json()["mesh"]
            assert mesh["request_id"] == cid  # the client's id is still its own
            ledger_id = mesh["ledger_request_id"]
            assert cid not in ledger_id and "alice" not in ledger_id
            # the same client id gives the same hash (replicas agree), and a random suffix
            assert ledger_id.split("~", 1)[0] == client_ledger_id(cid)
        await settlement(h).flush()
        await h.runtime.checkpointer.checkpoint()  # type: ignore[union-attr]
        pages = [
            await h.client.get("/v1/ledger?limit=1000"),
            await h.client.get("/v1/ledger/export"),
            await h.client.get("/dashboard/ledger"),
            await h.client.get("/dashboard/fragment/ledger"),
        ]
        for page in pages:
            assert page.status_code == 200
            for secret in (CLIENT_ID, OTHER_ID, "alice.smith", "invoice-47", "acme-crm"):
                assert secret not in page.text, (page.url, secret)
        settled_ids = {e["request_id"] for e in pages[0].json()["data"] if e["kind"] == "settle"}
        assert len(settled_ids) == 2
        assert {i.split("~", 1)[0] for i in settled_ids} == {
            client_ledger_id(CLIENT_ID),
            client_ledger_id(OTHER_ID),
        }


def _from(h: Harness, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://registry.test")


async def test_the_public_ledger_reads_are_bounded_per_address(tmp_path: Path) -> None:
    """Anyone may read the ledger, but not without end: the entries and checkpoints served
    count against the address's budget (``ledger_read_rows_per_min``; IPv6 per /64), then
    429 with ``Retry-After``; another address is served meanwhile, the first again once
    the minute refilled it. Found 2026-12-03: no bound at all: a page of 10,000 entries
    costs the gateway ~0.2 s of CPU and an export of 100,000 ~0.7 s, so one address asking
    in a loop kept the gateway (and every request it relays) busy."""
    assert Settings().ledger_read_rows_per_min == 1_000_000  # on by default
    async with running(tmp_path, ledger_read_rows_per_min=60) as h:
        ledger = h.runtime.ledger
        assert ledger is not None
        await ledger.append([Transfer("grant", MINT, POOL, 1 + i) for i in range(40)])
        await h.runtime.checkpointer.checkpoint()  # type: ignore[union-attr]
        size, _root = await ledger.head()
        async with (
            _from(h, "2001:db8:1:2::5") as a,
            _from(h, "2001:db8:1:2::6") as a2,
            _from(h, "203.0.113.9") as b,
        ):
            # 20 + 20 + 20 rows: the budget of 60 is spent, by any of the three reads
            assert (await a.get("/v1/ledger", params={"limit": 20})).status_code == 200
            r = await a.get("/v1/ledger/export", params={"after": size - 21})
            assert r.status_code == 200 and len(r.text.splitlines()) == 20
            r = await a2.get("/v1/ledger", params={"after": 19, "limit": 20})  # same /64
            assert r.status_code == 200 and len(r.json()["data"]) == 20
            for path in ("/v1/ledger", "/v1/ledger/export", "/v1/ledger/checkpoints"):
                refused = await a2.get(path, params={"limit": 10})
                assert refused.status_code == 429, (path, refused.text)
                assert int(refused.headers["retry-after"]) >= 1
                assert refused.json()["error"]["code"] == "rate_limit_exceeded"
            # another address is served meanwhile, its own budget counted as the first one
            assert (await b.get("/v1/ledger", params={"limit": 40})).status_code == 200
            r = await b.get("/v1/ledger/checkpoints", params={"limit": 10_000})
            checkpoints = len(r.json()["data"])  # charged these, not 10,000
            assert r.status_code == 200 and 1 <= checkpoints <= 5
            left = 60 - 40 - checkpoints
            assert (await b.get("/v1/ledger", params={"limit": left})).status_code == 200
            assert (await b.get("/v1/ledger", params={"limit": 1})).status_code == 429
            h.clock.advance(60.0)  # the minute refilled the first address's budget
            assert (await a.get("/v1/ledger", params={"limit": 20})).status_code == 200


async def test_many_addresses_share_one_total_of_public_ledger_rows(tmp_path: Path) -> None:
    """Found 2026-12-03: the ledger reads' budget was per address (IPv6 per /64) only, so a
    client holding a /48 (65,536 /64s) read 65,536 budgets a minute. Every address together
    is now served at most ``ledger_read_rows_total_per_min`` rows a minute (429 with
    ``Retry-After`` in the usual shape); an address its own budget refused is not counted;
    a read is settled to the rows it served; the minute refills the total."""
    assert Settings().ledger_read_rows_total_per_min == 3_000_000  # on by default
    async with running(
        tmp_path, ledger_read_rows_per_min=30, ledger_read_rows_total_per_min=100
    ) as h:
        ledger = h.runtime.ledger
        assert ledger is not None
        await ledger.append([Transfer("grant", MINT, POOL, 1 + i) for i in range(60)])
        served = []
        for i in range(8):  # 25 rows to each of 8 /64s of one /48: 100 rows, then 429s
            async with _from(h, f"2001:db8:9:{i:x}::1") as c:
                r = await c.get("/v1/ledger", params={"limit": 25})
                served.append(r.status_code)
                if i == 0:  # this address's own budget (30): refused, not counted in all
                    refused = await c.get("/v1/ledger", params={"limit": 25})
                    assert refused.status_code == 429
        assert served == [200] * 4 + [429] * 4
        err = r.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and "every address together" in err["message"]
        assert int(r.headers["retry-after"]) >= 1
        async with _from(h, "203.0.113.50") as other:  # an address of its own: the total holds
            r = await other.get("/v1/ledger/export", params={"limit": 10})
            assert r.status_code == 429
            h.clock.advance(60.0)  # the minute refills the total
            r = await other.get("/v1/ledger/export", params={"limit": 10})
            assert r.status_code == 200 and len(r.text.splitlines()) == 10


async def test_ledger_verify_waits_out_the_budget_and_gives_up_on_endless_429s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``llm-mesh ledger verify`` reads a ledger larger than its address's budget whole,
    waiting each 429's ``Retry-After``; a registry answering 429 for ever holds it at most
    ``RETRIES_429`` waits (each at most 60 s), then it fails naming the answer."""
    slept: list[float] = []
    async with running(tmp_path, ledger_read_rows_per_min=60) as h:

        async def on_the_clock(seconds: float) -> None:
            slept.append(seconds)
            h.clock.advance(seconds)

        monkeypatch.setattr(bounded_http, "_sleep", on_the_clock)
        monkeypatch.setattr(ledger_http, "EXPORT_LIMIT", 50)
        ledger = h.runtime.ledger
        assert ledger is not None
        await ledger.append([Transfer("grant", MINT, POOL, 1 + i) for i in range(150)])
        size, _root = await ledger.head()
        async with _from(h, "198.51.100.7") as c:
            source = ledger_http.HttpSource(c)
            rows: list[tuple[object, ...]] = []
            async for batch in source.entries(1000):
                rows.extend(batch)
            assert [r[0] for r in rows] == list(range(size))
            assert slept and all(1 <= s <= 60 for s in slept)

    def always_429(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={"error": {}})

    slept.clear()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(always_429), base_url="http://registry.test"
    ) as c:
        with pytest.raises(MeshError):
            await ledger_http.HttpSource(c).checkpoints()
        with pytest.raises(MeshError, match="429"):
            async for _batch in ledger_http.HttpSource(c).entries(1000):
                pass
    assert slept == [60.0] * (2 * bounded_http.RETRIES_429)


async def test_the_api_docs_on_the_dashboards_origin_cannot_be_framed_or_share_its_tab(
    tmp_path: Path,
) -> None:
    """``/docs`` (Swagger UI, run on the gateway's origin: ``test_api_docs.py``) may not be
    framed by another site, and the dashboard opens it in a tab of its own with no opener,
    so that page never runs in the tab whose session storage holds the operator's token
    (``tests/e2e/test_dashboard.py`` checks it in Chromium). Found 2026-12-03: no header at
    all on ``/docs`` (any site could frame it), and the footer's link opened it in the
    dashboard's own tab; the unused OAuth2 redirect page was served."""
    async with running(tmp_path) as h:
        docs = await h.client.get("/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert docs.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        assert docs.headers["x-content-type-options"] == "nosniff"
        assert docs.headers["referrer-policy"] == "no-referrer"
        assert (await h.client.get("/docs/oauth2-redirect")).status_code == 404
        page = (await h.client.get("/dashboard/")).text
        (link,) = [a for a in page.split("<a ")[1:] if a.startswith('href="/docs"')]
        assert 'target="_blank"' in link and "noopener" in link.split(">")[0]


async def test_a_public_page_asked_for_in_a_loop_is_rendered_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's node table and model list grow with the mesh (500 nodes: ~70-180 ms
    of the gateway's event loop a render) and are the same for everyone: asked for in a
    loop by anyone, each is rendered at most once per ``render_ttl_s`` (1 s) and served as
    rendered meanwhile. Found 2026-12-03: every request rendered it, so one client asking
    in a loop held the event loop every request of the gateway waits on."""
    built: Counter[str] = Counter()
    node_rows, model_rows = views.node_rows, views.model_rows

    def counted_nodes(*a: Any, **kw: Any) -> Any:
        built["nodes"] += 1
        return node_rows(*a, **kw)

    def counted_models(*a: Any, **kw: Any) -> Any:
        built["models"] += 1
        return model_rows(*a, **kw)

    monkeypatch.setattr(views, "node_rows", counted_nodes)
    monkeypatch.setattr(views, "model_rows", counted_models)
    async with running(tmp_path) as h:
        await h.register("node-a", models=["mistral-7b"])
        paths = ["/dashboard/nodes", "/dashboard/fragment/nodes", "/dashboard/models",
                 "/dashboard/fragment/models"]  # fmt: skip
        first = {p: (await h.client.get(p)).text for p in paths}
        async with _from(h, "203.0.113.50") as other:
            for _ in range(25):
                for p in paths:
                    r = await other.get(p)
                    assert r.status_code == 200 and r.text == first[p]
                    assert r.headers["cache-control"] == "no-store"  # still the page's headers
        assert built == {"nodes": 2, "models": 2}  # the page and its fragment, once each
        await h.register("node-b", models=["code-llama-7b"])
        served = 'data-model="code-llama-7b"'  # the served table's row, not the catalog's
        assert "node-b" not in (await h.client.get("/dashboard/fragment/nodes")).text
        assert served not in (await h.client.get("/dashboard/fragment/models")).text
        h.clock.advance(1.0)  # a second later the page shows the mesh as it is now
        assert "node-b" in (await h.client.get("/dashboard/fragment/nodes")).text
        assert served in (await h.client.get("/dashboard/fragment/models")).text
        assert built == {"nodes": 3, "models": 3}


async def test_the_node_listing_asked_for_in_a_loop_is_built_once_until_the_mesh_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /mesh/nodes`` is O(nodes) (500 nodes: ~16 ms of the event loop, ~500 KB) and
    anonymous: asked for in a loop, it is built once and served as built until the mesh
    changes (a registration, a state, a deregistration: in the very next answer) or, for
    what drifts (load, heartbeat ages), a second passed. Found 2026-12-03: every request
    built it again, so one client asking in a loop held the event loop."""
    built: Counter[str] = Counter()
    views = Routing.views

    def counted(self: Routing) -> Any:
        built["views"] += 1
        return views(self)

    monkeypatch.setattr(Routing, "views", counted)
    async with running(tmp_path) as h:
        await h.register("node-a", models=["mistral-7b"])
        first = await h.client.get("/mesh/nodes")
        assert [n["node_id"] for n in first.json()["nodes"]] == ["node-a"]
        async with _from(h, "203.0.113.50") as other:
            for _ in range(25):
                r = await other.get("/mesh/nodes")
                assert r.status_code == 200 and r.content == first.content
                assert r.headers["content-type"] == "application/json"
        assert built["views"] == 1
        admin = (await h.client.get("/mesh/nodes", headers=ADMIN)).json()["nodes"]
        assert admin[0]["url"] == "http://node-a:8801"  # the admin's own listing, not shared
        assert "url" not in (await h.client.get("/mesh/nodes")).json()["nodes"][0]
        assert built["views"] == 2
        await h.register("node-b", models=["code-llama-7b"])  # the very next GET shows it
        listed = (await h.client.get("/mesh/nodes")).json()["nodes"]
        assert [n["node_id"] for n in listed] == ["node-a", "node-b"]
        await h.client.post("/mesh/nodes/node-a/heartbeat", json={"state": "draining"})
        assert (await h.client.get("/mesh/nodes")).json()["nodes"][0]["state"] == "draining"
        assert (await h.client.delete("/mesh/nodes/node-b")).status_code == 204
        assert (await h.client.get("/mesh/nodes")).json()["nodes"][1]["state"] == "offline"
        assert built["views"] == 5
        # load drifts: shown within a second, not built again for every heartbeat
        hb = {"state": "draining", "in_flight": 2}
        await h.client.post("/mesh/nodes/node-a/heartbeat", json=hb)
        assert (await h.client.get("/mesh/nodes")).json()["nodes"][0]["in_flight"] == 0
        h.clock.advance(1.0)
        assert (await h.client.get("/mesh/nodes")).json()["nodes"][0]["in_flight"] == 2
        assert built["views"] == 6


FOREIGN_PAGES = [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://blog.registry.test"},
    {"Origin": "https://evil.example"},  # a browser without fetch metadata
    {"Origin": "null"},  # a sandboxed frame, a file:// page
]


@pytest.mark.parametrize("page", FOREIGN_PAGES, ids=["cross-site", "same-site", "origin", "null"])
async def test_a_web_page_of_another_site_cannot_spend_through_the_gateway(
    tmp_path: Path, page: dict[str, str]
) -> None:
    """Any web site can make its visitors' browsers post a ``text/plain`` body of JSON to
    the gateway (a simple request: no CORS preflight): it cannot read the answer, but each
    visitor is another address (the anonymous limit is per address) paid by the community
    pool, and ``llm-mesh up``'s gateway on 127.0.0.1 (no anonymous limit) runs it on the
    visitor's own node. Refused 403 before any node is called; the dashboard's playground
    (same origin), programs (no ``Origin``) are served. Found 2026-12-03: served, 200."""
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        own = f"{h.client.base_url.scheme}://{h.client.base_url.netloc.decode()}"
        for stream in (False, True):
            body = json.dumps({**BODY, "stream": stream})
            r = await h.client.post(
                CHAT, content=body, headers={"Content-Type": "text/plain", **page}
            )
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
        assert node.calls == []
        for ours in (
            {"Sec-Fetch-Site": "same-origin", "Origin": own},  # the playground
            {"Origin": own},  # the playground in a browser without fetch metadata
            {"Sec-Fetch-Site": "none"},  # typed by the user
            {},  # a program
        ):
            r = await h.client.post(CHAT, json=BODY, headers=ours)
            assert r.status_code == 200, (ours, r.text)
        assert len(node.calls) == 4


async def _export_until_the_client_leaves(h: Harness, address: str, query: bytes) -> None:
    """``GET /v1/ledger/export`` over raw ASGI from ``address``: the client reads the first
    chunk, then closes its connection (``http.disconnect``)."""
    got_chunk = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await got_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            got_chunk.set()
            await asyncio.sleep(0.05)  # a slow client: it leaves while this chunk goes out

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/v1/ledger/export", "raw_path": b"/v1/ledger/export",
        "query_string": query, "headers": [(b"host", b"registry.test")],
        "client": (address, 40_000), "server": ("registry.test", 80), "root_path": "",
    }  # fmt: skip
    await asyncio.wait_for(h.app(scope, receive, send), 5)


async def test_a_ledger_read_that_ends_early_gives_back_the_rows_it_did_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03: a public ledger read is charged its rows before it runs (to its
    address and to the process's total for every address); one the store failed (a page,
    an export part-way) or an export its client left after the first chunk kept its whole
    charge: a minute of the shared total for rows nobody read. Now a read is settled to the
    rows its store queries read (a query in flight when the client left counted whole)."""
    monkeypatch.setattr(ledger_api, "_EXPORT_CHUNK", 10)
    async with running(
        tmp_path, ledger_read_rows_per_min=1000, ledger_read_rows_total_per_min=100
    ) as h:
        ledger = h.runtime.ledger
        assert ledger is not None
        await ledger.append([Transfer("grant", MINT, POOL, 1 + i) for i in range(60)])
        total = h.runtime.limiter.total("ledger-read", 100, h.clock())

        def left() -> int:
            return round(total.bucket.level(h.clock()))

        # the client leaves after the first 10 rows, the next 10 being read: 20 of 50
        await _export_until_the_client_leaves(h, "203.0.113.9", b"limit=50")
        assert left() == 80  # before: 50 (the whole charge kept)
        queries: list[int] = []
        rows_of = ledger.entry_rows

        async def second_query_fails(after: int, limit: int) -> list[tuple[Any, ...]]:
            queries.append(limit)
            if len(queries) == 2:
                raise RuntimeError("the store went away")
            return await rows_of(after, limit)

        async def store_fails(after: int, limit: int) -> Any:
            raise RuntimeError("the store went away")

        monkeypatch.setattr(ledger, "entry_rows", second_query_fails)
        monkeypatch.setattr(ledger, "entries", store_fails)
        async with _from(h, "203.0.113.10") as c:
            with pytest.raises(RuntimeError):  # the export breaks after its first 10 rows
                await c.get("/v1/ledger/export", params={"limit": 50})
            assert left() == 70  # 10 read (before: 50 kept)
            with pytest.raises(RuntimeError):
                await c.get("/v1/ledger", params={"limit": 40})
            assert left() == 69  # a read counts 1 (before: 40 kept)


async def test_an_outlier_ejection_and_its_end_are_in_the_very_next_node_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03 (review): the listing's cache key was the node table's and quality
    control's changes only, so a node the router had just ejected (a 5xx) was listed
    ``ejected: false`` for up to a second, and one whose ejection had ended listed as still
    out. The router's own counter (``Router.changes``: an ejection, its end, routable) is
    in the key now; a request that changes none of it builds nothing again."""
    from LLM_Mesh.core.route_types import Outcome

    built: Counter[str] = Counter()
    views = Routing.views

    def counted(self: Routing) -> Any:
        built["views"] += 1
        return views(self)

    monkeypatch.setattr(Routing, "views", counted)

    async def listed() -> dict[str, Any]:
        r = await h.client.get("/mesh/nodes")
        return {n["node_id"]: n for n in r.json()["nodes"]}

    async with running(tmp_path) as h:
        for node in ("node-a", "node-b"):  # two: one of them may be ejected (max 50 %)
            await h.register(node, models=["mistral-7b"])
        assert not (await listed())["node-a"]["ejected"]
        routing = h.runtime.routing
        ok = routing.begin("node-b", "mistral-7b")
        routing.finish(ok, Outcome.SUCCESS, completion_tokens=1)  # nothing the key counts
        assert not (await listed())["node-a"]["ejected"]
        assert built["views"] == 1
        att = routing.begin("node-a", "mistral-7b")
        routing.finish(att, Outcome.SERVER_ERROR)  # a 5xx: ejected at once
        assert routing.router.outliers.is_ejected("node-a")
        now = await listed()  # the very next answer, the clock not moved
        assert now["node-a"]["ejected"] and now["node-a"]["ejections"] == 1
        assert not now["node-b"]["ejected"]
        assert built["views"] == 2
        assert (await listed())["node-a"]["ejected"] and built["views"] == 2  # no change
        # its end, by the clock alone: in the next answer too, though the last is fresh
        back = routing.router.outliers.next_release
        h.clock.advance(back - h.clock() - 0.5)
        for node in ("node-a", "node-b"):
            await h.client.post(f"/mesh/nodes/{node}/heartbeat", json={"state": "online"})
        assert (await listed())["node-a"]["ejected"]  # built again: a heartbeat, 1 s old
        h.clock.advance(0.5)
        assert not (await listed())["node-a"]["ejected"]
