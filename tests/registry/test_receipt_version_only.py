"""New receipts are always the current version (found 2026-12-07, money42): the gateway
signed version 2 (no amounts) for a request whose charges it could not put in the
receipt, and charged it all the same, so every check of those charges said "nothing to
compare". Now ``ReceiptSigner.countersign`` takes no version, and such a request is not
charged: its version-4 receipt signs that nobody was (``settled`` false), and the ledger
has no payment of it. Older versions are verified only (``core/receipt_verify.py``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.receipt import VERSION, ReceiptSigner
from LLM_Mesh.registry import account as account_stage
from tests.core.receipt_verify_fixtures import SIGNER, make_receipt
from tests.registry.helpers import running
from tests.registry.test_charge import BODY, CHAT, bearer, new_user, register, settlement
from tests.registry.test_receipts import registry_keys


def test_the_signer_signs_the_current_version_only() -> None:
    assert "version" not in inspect.signature(ReceiptSigner.countersign).parameters
    made = make_receipt(amounts=[100])
    assert made["v"] == VERSION == 4
    with pytest.raises(TypeError):  # before the fix: a version-2 receipt, signed
        SIGNER.countersign("req-1", "m", 1, 1, "0" * 64, [], "", None, 2)  # type: ignore[call-arg]


async def test_a_charge_the_receipt_cannot_sign_is_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A charge with no part of the receipt to go with (a wiring fault:
    ``core/receipt_money.price_receipt``): before, the receipt was version 2 and the user paid
    100 µNT under it, unchecked."""
    real = account_stage.charge_parts

    def one_too_many(job: Any, tally: Any, payment: Any) -> Any:
        charged, found = real(job, tally, payment)  # (found: each priced part's receipt part)
        return [*charged, ("no-such-node", 7, 1)], found

    monkeypatch.setattr(account_stage, "charge_parts", one_too_many)
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, payer = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200, r.text
        mesh = r.json()["mesh"]
        receipt = mesh["receipt"]
        assert (receipt["v"], receipt["settled"]) == (VERSION, False), receipt
        checked = check(r.text, await registry_keys(h))  # verifies, as `receipt verify` does
        assert checked.money is None
        assert mesh["cost"] == 0
        s = settlement(h)
        await s.flush()
        assert await s.balance(payer) == (1000, 0)  # nothing taken, nothing held
        ledger = h.runtime.ledger
        assert ledger is not None
        entries, _ = await ledger.entries(-1, 100)
        assert not [e for e in entries if e.request_id == mesh["request_id"]]
