"""Each receipt version's signed bytes pinned (hygiene44): the length and SHA-256 of the
bytes a registry signed, or signs, for fixed receipts of versions 1 to 4, settled and not,
with a client's id and without. ``test_receipt.py`` and ``test_receipt_encoding.py`` rebuild
the layout field by field; this file is the vector a refactor of the layout code
(``core/receipt.py``'s ``_layout``, ``core/receipt_old.py``) must keep byte for byte, and
the receipts already in users' hands verify only if it does.

The values were taken from the code before the receipt fields were said once (2026-12-07);
the receipts are built by keyword (``Receipt``, ``OldReceipt``) so that this file needs no
change when the layout's own functions do."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from LLM_Mesh.core.receipt import Money, Part, PartStatus, Receipt, ReceiptSigner
from LLM_Mesh.core.receipt_old import OldReceipt
from tests.core.receipt_fixtures import REGISTRY_KEY

HEX = "4ea5ee68fea05586106890ded5733820bb77d919cda27bc4b8139b7cd33b8889"
CLIENT = hashlib.sha256(b"a client's own id").hexdigest()
PARTS = (
    Part("node-a", "a2V5LWE", PartStatus.SIGNED, 12, 40, HEX, "c2lnLWE"),
    Part("nöde-b", "", PartStatus.INVALID, 3, 0, "00" * 31 + "ff", "", "usage"),
    Part("node-c", "a2V5LWM", PartStatus.BROKEN, 0, 7, "ff" * 32),
    Part("node-d", "a2V5LWQ", PartStatus.CUT, 2**63 - 1, 1, HEX),
    Part("node-e", "a2V5LWU", PartStatus.MISSING, 5, 5, HEX),
)
PAID = tuple(replace(p, amount=1000 + i, fee=50 + i) for i, p in enumerate(PARTS))
MONEY = Money("pool", 500, sum(p.amount or 0 for p in PAID))

#: name: (version, client id hash, settled)
CASES = {
    "v1": (1, "", False),
    "v2": (2, "", False),
    "v2-client": (2, CLIENT, False),
    "v3": (3, "", False),
    "v3-settled-client": (3, CLIENT, True),
    "v4": (4, "", False),
    "v4-settled": (4, "", True),
    "v4-settled-client": (4, CLIENT, True),
}

#: name: (length, SHA-256 of the signed bytes), from the code before the refactor
PINNED = {
    "v1": (498, "5f9a2dd9f075de033d23569ef09fe754732451021b074e20a03c090ce48895fd"),
    "v2": (503, "ee24609a2b58558b833a2aa3c9390b67cd685514c99a134a57f5aca5873c66f6"),
    "v2-client": (535, "99ebf345dadafba56e6abb47595ee56cf636f72fbde568a32afb9f03ed16248a"),
    "v3": (504, "e0c2b4e4bc22a1c8f536af15f37df189198d59648485a2279a359b4d2317e324"),
    "v3-settled-client": (638, "922ef4de99507498d9b66770ce14aa43f244ef42ee12376cf24047574b571d93"),
    "v4": (504, "1ceca1800aedabd76e68fa87ce2c6af81f7a7c13dde05aa71b19a818182a9f7e"),
    "v4-settled": (606, "b99fd27801cd51f23ef74125b0cb9887136ee7db0bfef3d09125bd0d3eb7f1b0"),
    "v4-settled-client": (638, "d420f437957f989874b863d7bbfb47a3fd968540675d9fabed809fbc0abaf918"),
}


def build(name: str) -> bytes:
    version, client, settled = CASES[name]
    made = Receipt if version == 4 else OldReceipt
    receipt = made(
        registry_id="reg-ü",
        request_id="req-é",
        model="gemma-3-270m",
        time_ms=1764900000123,
        prompt_tokens=12,
        completion_tokens=2**63 - 1,
        output_sha256=HEX,
        parts=PAID if settled else PARTS,
        signature="",
        client_id_hash=client,
        version=version,
        money=MONEY if settled else None,
    )
    return receipt.signed_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_versions_bytes_are_the_pinned_ones(name: str) -> None:
    data = build(name)
    assert (len(data), hashlib.sha256(data).hexdigest()) == PINNED[name]


def test_the_gateways_countersignature_is_the_pinned_one() -> None:
    """What ``ReceiptSigner.countersign`` signs (version 4, its own call of the layout):
    the pinned bytes' hash, and Ed25519's deterministic signature of them."""
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1764900000.123)
    receipt, receipt_hash = signer.countersign(
        "req-é", "gemma-3-270m", 12, 2**63 - 1, HEX, PAID, CLIENT, MONEY
    )
    assert receipt.time_ms == 1764900000123
    assert receipt_hash == receipt.receipt_hash == COUNTERSIGNED[0]
    assert receipt.signature == COUNTERSIGNED[1]


#: the countersigned receipt's hash and signature (its registry id: the fixed key's)
COUNTERSIGNED = (
    "5647292eeeb8184ae48af44cf49fe783cc50d4d71e1ead6c7920d12186b4af11",
    "RZZwO0Em9dR1T5qrLqnU875f5IBvSzW4wVBUWnl8DHl6qZqkmPZcReriIWhTvBfOlGLXfIWhuL0umUub-6S4Cw",
)
