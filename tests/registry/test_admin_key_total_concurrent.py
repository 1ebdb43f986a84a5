"""Wrong admin keys sent at once (found 2026-12-06, review36b).

trust36 bounded the store's reads of the admin key's hash by wrong keys from all addresses
together, ``WRONG_ADMIN_KEYS_TOTAL_PER_MIN`` (100) a minute per process; but the total was
looked at before the read and taken only after it (``CredentialTries.before`` /
``wrong``), so wrong keys sent together all found it free: 300 at once from 30 /64s (10
each, within each address's count) read the store 300 times, none refused. Now the total
is taken as the read starts and given back when the key was right: at most the total's
reads at once, and the admin's own keys still never count. The real registry app, clients
on another machine (ASGI), a store whose read takes a moment (as a database's does)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import new_secret
from LLM_Mesh.registry.admin import WRONG_ADMIN_KEYS_PER_MIN, WRONG_ADMIN_KEYS_TOTAL_PER_MIN
from tests.registry.helpers import running
from tests.registry.test_credential_tries import CountingStore


class SlowStore(CountingStore):
    """A read of the admin key's hash that takes a moment: requests overlap in it."""

    async def get_admin_key_hash(self) -> str | None:
        self.admin_reads += 1
        await asyncio.sleep(0.05)
        return await super(CountingStore, self).get_admin_key_hash()


async def _get(app: object, peer: tuple[str, int], key: str) -> int:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
        r = await c.get("/mesh/usage-audit", headers={"Authorization": f"Bearer {key}"})
        return r.status_code


async def test_wrong_keys_sent_at_once_read_the_store_at_most_the_total(tmp_path: Path) -> None:
    key = new_secret("lma")
    store = SlowStore()
    async with running(tmp_path, store=store, admin_key=key) as h:
        before = store.admin_reads
        codes = await asyncio.gather(*(
            _get(h.app, (f"2001:db8:{net:x}:1::7", 1), "lma_guess")
            for net in range(30) for _ in range(WRONG_ADMIN_KEYS_PER_MIN)
        ))  # fmt: skip
        # before the fix: 300 reads, every one a 401
        assert store.admin_reads - before <= WRONG_ADMIN_KEYS_TOTAL_PER_MIN
        assert codes.count(401) == store.admin_reads - before
        assert codes.count(429) == len(codes) - codes.count(401) > 0
        assert await _get(h.app, ("2001:db8:fffe:1::7", 1), key) == 200  # the admin passes


async def test_the_admins_own_keys_at_once_never_fill_the_total(tmp_path: Path) -> None:
    """Taken as each read starts, the total is given back for a right key: the admin's own
    requests, many and at once from a remote address, leave it whole for wrong ones (those
    past it while the others' reads are on their way pass as past any count: the key this
    process has read, ``AdminKeyMemo``)."""
    key = new_secret("lma")
    store = SlowStore()
    async with running(tmp_path, store=store, admin_key=key) as h:
        admin = ("2001:db8:abcd:1::7", 1)
        assert await _get(h.app, admin, key) == 200  # (the process has read the key once)
        codes = await asyncio.gather(*(_get(h.app, admin, key) for _ in range(150)))
        assert codes == [200] * 150
        # a stranger's wrong key still reads the store (401, not the total's 429)
        assert await _get(h.app, ("2001:db8:fffd:1::7", 1), "lma_guess") == 401
