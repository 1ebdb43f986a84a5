"""One live node per ``host:port`` across replicas (``node_url_taken``, found 2026-12-05).

Two registry apps on one store are two replicas. Each checked the address rule against
its own in-memory table only, so two keys registering one address at two replicas at the
same moment (or at a replica that had not yet loaded the other's node) both got in, and
the later one replaced the first one's TLS pin. The store's write now checks it too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _admin_connect, _admin_dsn, _drop_database
from tests.registry.helpers import registration
from tests.registry.test_shared_idempotency import two_replicas

URL = "https://shared.example:8801"


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None: one MemoryStore both replicas hold; else a fresh PostgreSQL database."""
    if request.param == "memory":
        yield None
        return
    name = f"h27_race27_{secrets.token_hex(6)}"
    conn = await _admin_connect()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop_database(name)


def _body(node_id: str, url: str, fp: str) -> dict[str, Any]:
    return registration(node_id, url=url, tls_fingerprint=fp)


async def test_a_node_known_only_from_the_store_holds_its_address(
    tmp_path: Path, store_url: str | None
) -> None:
    """Replica b has not polled the store yet: its table does not know n1 there."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        r = await a.client.post("/mesh/nodes", json=_body("n1", URL, "ab" * 32))
        assert r.status_code == 200, r.text
        r = await b.client.post("/mesh/nodes", json=_body("evil", URL, "cd" * 32))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "node_url_taken"
        assert b.table.get("evil") is None
        assert b.runtime.pins.host_fingerprint("shared.example", 8801) != "cd" * 32
        for h in (a, b):
            assert await h.store.get_node("evil") is None
        # the node itself registers again at the other replica, as before
        r = await b.client.post("/mesh/nodes", json=_body("n1", URL, "ef" * 32))
        assert r.status_code == 200, r.text


async def test_two_keys_registering_one_address_at_once_at_two_replicas(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        for attempt in range(3):
            url = f"https://race{attempt}.example:8801"
            ra, rb = await asyncio.gather(
                a.client.post("/mesh/nodes", json=_body(f"a{attempt}", url, "ab" * 32)),
                b.client.post("/mesh/nodes", json=_body(f"b{attempt}", url, "cd" * 32)),
            )
            codes = sorted([ra.status_code, rb.status_code])
            assert codes == [200, 403], (ra.text, rb.text)
            lost = ra if ra.status_code == 403 else rb
            assert lost.json()["error"]["reason"] == "node_url_taken"
            stored = [await a.store.get_node(f"{x}{attempt}") for x in "ab"]
            assert sum(n is not None for n in stored) == 1


async def test_one_request_id_sent_to_two_replicas_at_once_runs_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """The race tried 2026-12-05: no defect (the shared claim is one insert)."""
    from tests.registry.test_shared_idempotency import BODY, CHAT, _register_everywhere

    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        for i in range(5):
            hdr = {"X-Request-Id": f"same-{i}"}
            r1, r2 = await asyncio.gather(
                a.client.post(CHAT, json=BODY, headers=hdr),
                b.client.post(CHAT, json=BODY, headers=hdr),
            )
            assert a.nodes.calls() == i + 1, (r1.text, r2.text)
            assert {r1.status_code, r2.status_code} <= {200, 409}, (r1.text, r2.text)
            assert 200 in (r1.status_code, r2.status_code)


async def test_one_node_registering_two_urls_at_two_replicas_at_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """The race tried 2026-12-05: the store keeps one row; each replica's table holds the
    URL it took until its next node poll, which brings both to the stored one."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        ra, rb = await asyncio.gather(
            a.client.post("/mesh/nodes", json=_body("n1", "https://one.example:8801", "ab" * 32)),
            b.client.post("/mesh/nodes", json=_body("n1", "https://two.example:8801", "cd" * 32)),
        )
        assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
        stored = await a.store.get_node("n1")
        assert stored is not None
        for h in (a, b):
            sync = h.app.state.node_sync
            assert sync is not None
            await sync.poll()
        ea, eb = a.table.get("n1"), b.table.get("n1")
        assert ea is not None and eb is not None
        assert ea.url == eb.url == stored.url, (ea.url, eb.url, stored.url)
        host = stored.url.split("//")[1].split(":")[0]
        for h in (a, b):
            assert h.runtime.pins.host_fingerprint(host, 8801) == stored.tls_fingerprint
