"""Anonymous requests with fresh ids cannot push a keyed client's id out of a lone
gateway's replay window (found 2026-12-05: one LRU of 10,000 keys for every client, so
anyone sending anonymous requests with new ids, 6,000 a minute with the anonymous total,
pushed it out within minutes: the keyed client's retry inside the 10 min, after a lost
answer, got 409 "paid before this registry restarted" (``paid_ids.py`` kept it from running
twice), never its answer). docs/security.md, "Users and API keys"."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from tests.registry.helpers import running
from tests.registry.test_access import bearer
from tests.registry.test_charge import BODY, COST, new_user, register, settlement

BOUND = 20  # the cache's max_entries, made small here (10,000 in a gateway)


async def test_an_anonymous_flood_of_ids_keeps_a_keyed_clients_id(tmp_path: Path) -> None:
    store = MemoryStore()
    store.shares_replicas = False  # type: ignore[attr-defined]  # a lone registry's (SQLite)
    async with running(tmp_path, store=store) as h:
        assert not isinstance(h.runtime.idempotency, SharedIdempotency)
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        h.runtime.idempotency.max_entries = BOUND
        headers = {**bearer(key), "X-Request-Id": "order-42"}
        first = await h.client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert first.status_code == 200, first.text
        for i in range(2 * BOUND):  # anyone, no key: a fresh id each
            r = await h.client.post(
                "/v1/chat/completions", json=BODY, headers={"X-Request-Id": f"flood-{i}"}
            )
            assert r.status_code == 200, r.text
        again = await h.client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert again.headers.get("x-mesh-replayed") == "true", again.text  # before: 409
        assert again.json() == first.json()
        keyed_calls = [c for c in node.calls if "authorization" not in c["headers"]]
        assert len(keyed_calls) == 1 + 2 * BOUND  # the keyed request ran once
        await settlement(h).flush()
        assert await settlement(h).balance(account) == (1000 - COST, 0)
