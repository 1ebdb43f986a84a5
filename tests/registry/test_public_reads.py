"""What anyone on the internet reads without a key: the public ledger and the dashboard.

Attacks of the 2026-12-03 review of the public surfaces (docs/security.md, "Public
listings" and "Dashboard"): each test names what it did before its fix.
"""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.registry.parse import client_ledger_id
from tests.registry.helpers import running
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
