"""Whether another node's row still holds an address (``node_url_taken``, the store's write:
``Store.upsert_node``'s ``address_live_since``), judged on the store's clock where the row
has a valid stamp (migration 0033, ``core/store_heard.heard_within``), the registering
replica's wall clock only for rows without one. Before (found 2026-12-07, forget42), the
write compared the rows' wall stamps with the registering replica's wall clock less the
expiry: at a replica an hour ahead every live node's row read as quiet, so a second key
took a live node's address (its TLS pin replaced, the node refused by the gateway); at one
an hour behind a node gone for up to an hour still held its address. Both failed before."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Interval, literal, update

from LLM_Mesh.registry import api, tables
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness, registration
from tests.registry.test_node_sync import store_url
from tests.registry.test_shared_idempotency import two_replicas

__all__ = ["store_url"]  # the fixture

URL = "https://shared.example:8801"
HOUR = timedelta(hours=1)


def _body(node_id: str, fp: str) -> dict[str, Any]:
    return registration(node_id, url=URL, tls_fingerprint=fp)


def _wall_off(monkeypatch: pytest.MonkeyPatch, skew: timedelta) -> None:
    """The registering replica's wall clock (``api._utcnow``) ``skew`` off."""
    monkeypatch.setattr(api, "_utcnow", lambda: datetime.now(timezone.utc) + skew)


async def _quiet(h: Harness, node_id: str, by: timedelta) -> None:
    """``node_id``'s last heartbeat ``by`` earlier, on both its stamps (the writer's wall
    clock and the store's): quiet that long on every clock."""
    store: Any = h.store
    if isinstance(store, MemoryStore):
        rec = store.nodes[node_id]
        assert rec.last_heartbeat_at is not None and rec.heard_store_at is not None
        rec.last_heartbeat_at -= by
        rec.heard_store_at -= by
        store.heard_store_of[node_id] = rec.last_heartbeat_at
        return
    n, back = tables.nodes, literal(by, Interval())
    async with store.engine.begin() as conn:
        await conn.execute(
            update(n)
            .where(n.c.node_id == node_id)
            .values(
                last_heartbeat_at=n.c.last_heartbeat_at - back,
                heard_store_at=n.c.heard_store_at - back,
                heard_store_of=n.c.heard_store_of - back,
            )
        )


async def test_at_a_replica_an_hour_ahead_a_live_node_still_holds_its_address(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: 200, evil's row written over n1's address."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await b.app.state.node_sync.stop()  # b's table does not know n1: the store decides
        r = await a.client.post("/mesh/nodes", json=_body("n1", "ab" * 32))
        assert r.status_code == 200, r.text
        _wall_off(monkeypatch, HOUR)
        r = await b.client.post("/mesh/nodes", json=_body("evil", "cd" * 32))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "node_url_taken"
        assert await b.store.get_node("evil") is None


async def test_at_a_replica_an_hour_behind_a_node_gone_no_longer_holds_its_address(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n1 quiet 10 minutes (expiry 30 s) on every clock; failed before: 403 ``node_url_taken``
    (its stamp inside b's window, an hour wide too far back)."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await b.app.state.node_sync.stop()
        r = await a.client.post("/mesh/nodes", json=_body("n1", "ab" * 32))
        assert r.status_code == 200, r.text
        await _quiet(a, "n1", timedelta(minutes=10))
        _wall_off(monkeypatch, -HOUR)
        r = await b.client.post("/mesh/nodes", json=_body("n2", "cd" * 32))
        assert r.status_code == 200, r.text


async def _unstamped(h: Harness, node_id: str, *, stale: bool) -> None:
    """``node_id`` heard now by its wall stamp alone: ``stale``, a replica of the older
    version wrote the heartbeat (the store's stamp left, of an older one); else a row of
    before 0033 (no stamp at all)."""
    store: Any = h.store
    now = datetime.now(timezone.utc)
    if isinstance(store, MemoryStore):
        rec = store.nodes[node_id]
        rec.last_heartbeat_at = now
        if not stale:
            rec.heard_store_at = store.heard_store_of[node_id] = None
        return
    n = tables.nodes
    values: dict[str, Any] = {"last_heartbeat_at": now}
    if not stale:
        values.update(heard_store_at=None, heard_store_of=None)
    async with store.engine.begin() as conn:
        await conn.execute(update(n).where(n.c.node_id == node_id).values(**values))


@pytest.mark.parametrize("stale", [True, False], ids=["older-replica", "before-0033"])
async def test_a_row_without_a_valid_stamp_holds_its_address_by_the_wall_clock(
    tmp_path: Path, store_url: str | None, stale: bool
) -> None:
    """The fallback: n1's last heartbeat with no valid store stamp (its own older than the
    expiry, or none): held by the wall clock, as before."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await b.app.state.node_sync.stop()
        r = await a.client.post("/mesh/nodes", json=_body("n1", "ab" * 32))
        assert r.status_code == 200, r.text
        await _quiet(a, "n1", timedelta(minutes=10))
        await _unstamped(a, "n1", stale=stale)
        r = await b.client.post("/mesh/nodes", json=_body("n2", "cd" * 32))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "node_url_taken"
