"""The admin's own key past its address's count of wrong ones (found 2026-12-06, trust36).

``check_admin`` counts wrong admin keys per client address (an IPv6 one per /64) and past
``WRONG_ADMIN_KEYS_PER_MIN`` refused the address with 429 before reading the store. A
stranger behind the admin's NAT (or in its /64) spending those tries locked the remote
admin out for up to a minute: its right key got the 429 too. Now a key of the registry's
own form (``lma_`` + 256 random bits) that is the hash this process last read passes (one
store read to confirm it); any other key gets the 429 with no read, so the bound on the
store's reads stands, and a key set by hand (not of that form) is no more testable past
the count than before. The real registry app, clients on another machine (ASGI)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import hash_secret, new_secret
from LLM_Mesh.registry.admin import WRONG_ADMIN_KEYS_PER_MIN, WRONG_ADMIN_KEYS_TOTAL_PER_MIN
from tests.registry.helpers import running
from tests.registry.test_credential_tries import CountingStore

STRANGER = ("203.0.113.5", 40000)
ADMIN_BEHIND_THE_SAME_NAT = ("203.0.113.5", 40001)


def _from(app: object, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _fill(app: object, wrong: str) -> None:
    async with _from(app, STRANGER) as c:
        for _ in range(WRONG_ADMIN_KEYS_PER_MIN):
            assert (await c.get("/mesh/usage-audit", headers=_bearer(wrong))).status_code == 401
        assert (await c.get("/mesh/usage-audit", headers=_bearer(wrong))).status_code == 429


async def test_the_right_admin_key_passes_a_count_filled_by_a_stranger(tmp_path: Path) -> None:
    key = new_secret("lma")
    store = CountingStore()
    async with running(tmp_path, store=store, admin_key=key) as h:
        await _fill(h.app, "lma_guess")
        async with _from(h.app, ADMIN_BEHIND_THE_SAME_NAT) as admin:
            # before the fix: 429 (the admin locked out until the minute refills)
            for method, path in (("GET", "/mesh/usage-audit"), ("POST", "/mesh/health-check")):
                r = await admin.request(method, path, headers=_bearer(key))
                assert r.status_code == 200, (path, r.status_code, r.text)


async def test_past_the_count_a_wrong_key_reads_nothing_and_learns_only_429(
    tmp_path: Path,
) -> None:
    key = new_secret("lma")
    store = CountingStore()
    async with running(tmp_path, store=store, admin_key=key) as h:
        await _fill(h.app, "lma_guess")
        reads = store.admin_reads
        async with _from(h.app, STRANGER) as c:
            for wrong in (
                new_secret("lma"),
                "lma_guess",
                key[:-1] + ("A" if key[-1] != "A" else "B"),
            ):
                for _ in range(50):
                    r = await c.get("/mesh/usage-audit", headers=_bearer(wrong))
                    assert r.status_code == 429, r.text
        assert store.admin_reads == reads  # the bound on the store's reads stands


async def test_a_key_set_by_hand_is_not_let_past_the_count(tmp_path: Path) -> None:
    """A key not of the registry's form (``LLM_MESH_ADMIN_KEY`` chosen by a person, perhaps
    guessable) is testable only within the count, as before: past it, 429 even when right."""
    key = "correct horse battery staple"
    async with running(tmp_path, admin_key=key) as h:
        await _fill(h.app, "lma_guess")
        async with _from(h.app, ADMIN_BEHIND_THE_SAME_NAT) as admin:
            assert (await admin.get("/mesh/usage-audit", headers=_bearer(key))).status_code == 429


async def test_a_rotated_away_key_is_refused_past_the_count(tmp_path: Path) -> None:
    """The hash remembered is the one before a rotation (by the CLI or another replica):
    the old key is confirmed against the store, refused (429), and the memo follows."""
    old, new = new_secret("lma"), new_secret("lma")
    store = CountingStore()
    async with running(tmp_path, store=store, admin_key=old) as h:
        await _fill(h.app, "lma_guess")
        await store.set_admin_key_hash(hash_secret(new), datetime.now(timezone.utc), replace=True)
        async with _from(h.app, ADMIN_BEHIND_THE_SAME_NAT) as admin:
            assert (await admin.get("/mesh/usage-audit", headers=_bearer(old))).status_code == 429
            assert (await admin.get("/mesh/usage-audit", headers=_bearer(new))).status_code == 200
        h.clock.advance(61)
        async with _from(h.app, ADMIN_BEHIND_THE_SAME_NAT) as admin:
            assert (await admin.get("/mesh/usage-audit", headers=_bearer(old))).status_code == 401


async def test_wrong_keys_from_many_64s_are_bounded_in_all(tmp_path: Path) -> None:
    """The attack: each of many IPv6 /64s (a /48 holds 65,536) spends its own count of
    wrong keys; before the fix every one read the store (here 30 /64s: 300 reads, and a
    31st /64's wrong key was a 401 after one more). Now at most the total a minute; past
    it a wrong key from a fresh /64 is a 429 with no read, and the admin still passes."""
    key = new_secret("lma")
    store = CountingStore()
    async with running(tmp_path, store=store, admin_key=key) as h:
        before = store.admin_reads
        for net in range(30):
            async with _from(h.app, (f"2001:db8:{net:x}:1::7", 1)) as c:
                for _ in range(WRONG_ADMIN_KEYS_PER_MIN):
                    await c.get("/mesh/usage-audit", headers=_bearer("lma_guess"))
        assert store.admin_reads - before == WRONG_ADMIN_KEYS_TOTAL_PER_MIN
        async with _from(h.app, ("2001:db8:ffff:1::7", 1)) as fresh:
            r = await fresh.get("/mesh/usage-audit", headers=_bearer("lma_guess"))
            assert r.status_code == 429 and "all addresses" in r.json()["error"]["message"]
        assert store.admin_reads - before == WRONG_ADMIN_KEYS_TOTAL_PER_MIN
        async with _from(h.app, ("2001:db8:fffe:1::7", 1)) as admin:
            assert (await admin.get("/mesh/usage-audit", headers=_bearer(key))).status_code == 200
        # loopback (the admin CLI on the registry's machine) is neither counted nor refused
        assert (await h.client.get("/mesh/usage-audit", headers=_bearer("x"))).status_code == 401
        h.clock.advance(61)  # the total refills
        async with _from(h.app, ("2001:db8:ffff:1::7", 1)) as fresh:
            r = await fresh.get("/mesh/usage-audit", headers=_bearer("lma_guess"))
            assert r.status_code == 401
