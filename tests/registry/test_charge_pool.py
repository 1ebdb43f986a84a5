"""Who the community pool pays: an operator must not turn the pool into its own earnings.

Found 2026-12-06 (``money33``): an operator registers a node with a model no other node
serves (a custom model: one registration field, no catalog entry, so no canary can check
its answers and its node may answer anything) and sends it anonymous requests, paid by the
``pool``: each request paid the operator (less the fee) from the pool's daily budget, for
text nobody could check, until the pool was dry (402 ``community_pool_exhausted`` for every
honest anonymous user). The pool pays for catalog models only; a custom model's requests
need an API key (its user pays), except from the machine's own loopback (``llm-mesh up``).
The real app with fake nodes (``tests/registry/helpers.py``).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from LLM_Mesh.core.ledger_entry import POOL
from tests.keyed import operator_account
from tests.registry.helpers import Harness, running
from tests.registry.test_charge import CHAT, bearer, new_user, settlement

CUSTOM = "mine-7b"  # in no catalog: only the operator's node serves it
BODY = {"model": CUSTOM, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _from(h: Harness, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://registry")


async def test_the_pool_does_not_pay_an_operators_own_custom_model(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a", models=[CUSTOM])
        s = settlement(h)
        s.note_operator("a", "mallory")
        before = await s.balance(POOL)
        async with _from(h, "203.0.113.7") as anyone:
            for stream in (False, True):
                r = await anyone.post(CHAT, json={**BODY, "stream": stream})
                assert r.status_code == 402, r.text
                err = r.json()["error"]
                assert err["code"] == "api_key_required" and err["payer"] == "pool"
                assert CUSTOM in err["message"] and "API key" in err["message"]
            assert node.calls == []  # no node ran
            await s.flush()
            assert await s.balance(POOL) == before
            assert await s.balance(operator_account("mallory")) == (0, 0)
            # a keyed user of the custom model is served and pays, as before
            key, account = await new_user(h, 10**6)
            r = await anyone.post(CHAT, json=BODY, headers=bearer(key))
            assert r.status_code == 200, r.text
            cost = r.json()["mesh"]["cost"]
            assert cost > 0
            await s.flush()
            assert (await s.balance(account))[0] == 10**6 - cost
            assert (await s.balance(operator_account("mallory")))[0] > 0


async def test_the_pool_still_pays_a_catalog_model_and_the_machines_own_clients(
    tmp_path: Path,
) -> None:
    """Anonymous requests for a catalog model are paid by the pool from any address; a
    custom model's from loopback too (``llm-mesh up`` with a model file of one's own)."""
    async with running(tmp_path) as h:
        await h.register("a", models=[CUSTOM, "mistral-7b"])
        s = settlement(h)
        s.note_operator("a", "alice")
        async with _from(h, "203.0.113.7") as anyone:
            r = await anyone.post(CHAT, json={**BODY, "model": "mistral-7b"})
            assert r.status_code == 200, r.text
        for address in ("127.0.0.1", "::1"):
            async with _from(h, address) as local:
                r = await local.post(CHAT, json=BODY)
                assert r.status_code == 200, r.text
        await s.flush()
        assert (await s.balance(operator_account("alice")))[0] > 0


async def test_no_peer_but_loopback_passes_as_this_machine(tmp_path: Path) -> None:
    """attack34: the loopback exemption went by the client's scope, and an IPv6 client is
    its /64: ``::1``'s is ``::/64``, which every address of ``::/64`` shares, the
    IPv4-compatible ``::203.0.113.7`` and ``::2`` too (bogons, but a peer an on-link
    attacker or a careless upstream can present): the pool paid their custom-model
    requests. Only loopback is this machine: ``127.0.0.0/8``, ``::1`` and, on a dual-stack
    listener, ``::ffff:127.0.0.1``; a name (a Unix socket's client, a test's) is not."""
    async with running(tmp_path) as h:
        node = await h.register("a", models=[CUSTOM])
        for address in ("::203.0.113.7", "::2", "::ffff:0:203.0.113.7", "localhost", "0.0.0.0"):
            async with _from(h, address) as anyone:
                r = await anyone.post(CHAT, json=BODY)
                assert r.status_code == 402, (address, r.text)
                assert r.json()["error"]["code"] == "api_key_required"
        assert node.calls == []
        for address in ("127.0.0.2", "::ffff:127.0.0.1"):
            async with _from(h, address) as local:
                r = await local.post(CHAT, json=BODY)
                assert r.status_code == 200, (address, r.text)
