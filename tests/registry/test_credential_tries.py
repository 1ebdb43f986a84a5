"""Wrong admin keys and operator tokens cost the store a read each: bounded per address
(found 2026-12-06, attack35).

``check_admin`` reads the admin key's hash from the store at every check (every registry
on one database agrees on it). Any stranger reaches it: ``POST /mesh/health-check``,
``/mesh/canary/run``, ``GET /mesh/usage-audit``, and ``GET /mesh/nodes`` with any
``Authorization: Bearer`` (which also skips the public listing's once-a-second cache).
Before the fix a loop of ``Bearer x`` from one address cost the store one read per
request without end (on PostgreSQL a pooled connection each, the pool the heartbeats'
and registrations' reads share), where guessing API keys was bounded per address
(``access.LOOKUPS_PER_MIN``). The same held for operator tokens at ``GET /v1/earnings``,
while the dashboard's operator view (the same check) counted its look-ups per address:
guessing through the API went round that bound. Here the real registry app, a client on
another machine (ASGI, no sockets), the store's reads counted."""

from __future__ import annotations

from pathlib import Path

import httpx

from LLM_Mesh.registry.admin import (
    WRONG_ADMIN_KEYS_PER_MIN,
    WRONG_OPERATOR_TOKENS_PER_MIN,
    add_operator,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import OperatorRecord
from tests.registry.helpers import ADMIN, running

STRANGER = ("203.0.113.5", 40000)
WRONG = {"Authorization": "Bearer lma_guess"}
ROUTES = (
    ("POST", "/mesh/health-check"),
    ("POST", "/mesh/canary/run"),
    ("GET", "/mesh/usage-audit"),
    ("GET", "/mesh/nodes"),
)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.admin_reads = self.token_reads = 0

    async def get_admin_key_hash(self) -> str | None:
        self.admin_reads += 1
        return await super().get_admin_key_hash()

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        self.token_reads += 1
        return await super().operator_by_token(token_hash)


def _from(app: object, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


async def test_a_loop_of_wrong_admin_keys_is_bounded_per_address(tmp_path: Path) -> None:
    store = CountingStore()
    async with running(tmp_path, store=store) as h:
        async with _from(h.app, STRANGER) as c:
            before = store.admin_reads
            codes = []
            for i in range(200):
                method, path = ROUTES[i % len(ROUTES)]
                codes.append((await c.request(method, path, headers=WRONG)).status_code)
            reads = store.admin_reads - before
            # before the fix: 200 reads, 200 answers of 401
            assert reads == WRONG_ADMIN_KEYS_PER_MIN, reads
            assert codes[:WRONG_ADMIN_KEYS_PER_MIN] == [401] * WRONG_ADMIN_KEYS_PER_MIN
            assert set(codes[WRONG_ADMIN_KEYS_PER_MIN:]) == {429}
            r = await c.post("/mesh/health-check", headers=WRONG)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            # the public listing (no key) is still served to that address
            assert (await c.get("/mesh/nodes")).status_code == 200
            # another /64 has its own count
        async with _from(h.app, ("2001:db8:1:2::5", 1)) as other:
            assert (await other.get("/mesh/usage-audit", headers=WRONG)).status_code == 401
            # an IPv6 address's neighbours in its /64 share it
            for _ in range(WRONG_ADMIN_KEYS_PER_MIN):
                await other.get("/mesh/usage-audit", headers=WRONG)
        async with _from(h.app, ("2001:db8:1:2::99", 1)) as neighbour:
            assert (await neighbour.get("/mesh/usage-audit", headers=WRONG)).status_code == 429
        # a minute later the address may try again
        h.clock.advance(61)
        async with _from(h.app, STRANGER) as c:
            assert (await c.get("/mesh/usage-audit", headers=WRONG)).status_code == 401


async def test_the_admins_own_key_is_never_counted_nor_locked_out(tmp_path: Path) -> None:
    """(no attack; what the bound must keep) the right key, from anywhere, is never counted:
    the admin's own loop of calls is served; a stranger spending its address's wrong
    tries does not lock out the admin on loopback (the CLI on the registry's machine)."""
    async with running(tmp_path) as h:
        async with _from(h.app, ("198.51.100.7", 1)) as admin:
            for _ in range(3 * WRONG_ADMIN_KEYS_PER_MIN):
                assert (await admin.get("/mesh/usage-audit", headers=ADMIN)).status_code == 200
        async with _from(h.app, STRANGER) as c:
            for _ in range(WRONG_ADMIN_KEYS_PER_MIN + 1):
                await c.get("/mesh/usage-audit", headers=WRONG)
            assert (await c.get("/mesh/usage-audit", headers=WRONG)).status_code == 429
        for _ in range(3 * WRONG_ADMIN_KEYS_PER_MIN):  # loopback: h.client
            r = await h.client.get("/mesh/usage-audit", headers=WRONG)
            assert r.status_code == 401
        assert (await h.client.post("/mesh/health-check", headers=ADMIN)).status_code == 200


async def test_a_loop_of_unknown_operator_tokens_is_bounded_per_address(tmp_path: Path) -> None:
    store = CountingStore()
    token = await add_operator(store, "alice")
    assert token is not None
    async with running(tmp_path, store=store) as h, _from(h.app, STRANGER) as c:
        before = store.token_reads
        codes = [(await c.get("/v1/earnings", headers=WRONG)).status_code for _ in range(200)]
        reads = store.token_reads - before
        # before the fix: 200 reads, 200 answers of 401
        assert reads == WRONG_OPERATOR_TOKENS_PER_MIN, reads
        n = WRONG_OPERATOR_TOKENS_PER_MIN
        assert codes[:n] == [401] * n and set(codes[n:]) == {429}
        # the admin key's count is another: one wrong kind does not spend the other
        assert (await c.get("/mesh/usage-audit", headers=WRONG)).status_code == 401
        # the operator's own token, from anywhere, is never counted
        mine = {"Authorization": f"Bearer {token}"}
        async with _from(h.app, ("198.51.100.7", 1)) as own:
            for _ in range(2 * n):
                assert (await own.get("/v1/earnings", headers=mine)).status_code == 200
