"""core/receipt_verify.py, versions 3 and 4: the amounts a receipt signs (µNT), checked
offline; a receipt made before them (version 2) still verifies, and a version-3 receipt's
fees (rounded down, before 2026-12-06) too."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from LLM_Mesh.core.receipt import VERSION, Money, ReceiptError
from LLM_Mesh.core.receipt_verify import Found, find_receipt, parse_receipt, verify
from tests.core.receipt_verify_fixtures import (
    KEYS,
    NODE_A,
    NODE_B,
    SIGNER,
    answer,
    make_receipt,
    reason,
    signed_as,
)


def test_a_settled_receipt_signs_what_each_part_was_charged() -> None:
    """Version 4: the amounts (µNT) are in the registry's signature; any changed is refused."""
    r = make_receipt(amounts=[100])
    assert (r["v"], r["settled"], r["payer"], r["fee_bps"], r["cost"]) == (
        4,
        True,
        "user",
        500,
        100,
    )
    assert (r["parts"][0]["amount"], r["parts"][0]["fee"]) == (100, 5)
    receipt = verify(Found(r), KEYS, require_signed=True)
    assert receipt.money == Money("user", 500, 100) and receipt.to_json() == r
    assert reason(json.dumps(answer(r))) == "valid"
    for path, value in [
        (("parts", 0, "amount"), 99), (("parts", 0, "fee"), 4), (("cost",), 99),
        (("payer",), "pool"), (("fee_bps",), 0), (("parts", 0, "amount"), 0),
    ]:  # fmt: skip
        altered = copy.deepcopy(r)
        target: Any = altered
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        assert reason(Found(altered)) == "gateway_signature", path
    for path, value in [
        (("settled",), False), (("payer",), "user:abc"), (("payer",), None), (("cost",), -1),
        (("fee_bps",), 10_001), (("parts", 0, "amount"), None), (("parts", 0, "fee"), "5"),
    ]:  # fmt: skip
        altered = copy.deepcopy(r)
        target = altered
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        assert reason(Found(altered)) == "malformed", path
    two = make_receipt(parts=[(NODE_B, "The answer ", 2, True), (NODE_A, "is 42.", 2, False)],
                       amounts=[45, 20], payer="pool")  # fmt: skip
    assert [(p["amount"], p["fee"]) for p in two["parts"]] == [(45, 3), (20, 1)]  # 2.25 -> 3
    assert (two["cost"], two["payer"], reason(Found(two))) == (65, "pool", "valid")


def test_amounts_that_do_not_agree_are_refused_even_when_signed() -> None:
    """A registry key that signed amounts that do not add up, a fee not the rule's, or an
    amount for a part nobody pays: ``amounts`` (the receipt must be its own proof)."""
    base = make_receipt(amounts=[100])
    for money, amount, fee in [
        (Money("user", 500, 101), 100, 5), (Money("user", 500, 100), 100, 6),
        (Money("user", 1000, 100), 100, 5),
    ]:  # fmt: skip
        r = _resigned(base, money, [(amount, fee)])
        assert reason(Found(r)) == "amounts", (money, amount, fee)
    invalid = copy.deepcopy(base)
    invalid["parts"][0].update(status="invalid", reason="usage")
    assert reason(Found(_resigned(invalid, Money("user", 500, 100), [(100, 5)]))) == "amounts"
    assert reason(Found(_resigned(invalid, Money("user", 500, 0), [(0, 0)]))) == "valid"


def _resigned(
    r: dict[str, Any], money: Money, amounts: list[tuple[int, int]], version: int = VERSION
) -> dict[str, Any]:
    """``r`` with ``money`` and these part amounts, countersigned again by the registry key
    (as a receipt of ``version``)."""
    parsed = parse_receipt(r)
    parts = [replace(p, amount=a, fee=f) for p, (a, f) in zip(parsed.parts, amounts, strict=True)]
    args = (parsed.request_id, parsed.model, parsed.prompt_tokens, parsed.completion_tokens,
            parsed.output_sha256, parts, parsed.client_id_hash, money)  # fmt: skip
    if version != VERSION:  # an older registry's (the signer makes only VERSION)
        return signed_as(version, *args).to_json()
    receipt, h = SIGNER.countersign(*args)
    return receipt.to_json(h)


def test_a_fee_is_rounded_up_and_a_version_3_receipts_rounded_down_still_verifies() -> None:
    """Found 2026-12-06 (``money34``): a fee rounded down was 0 below 20 µNT at 500 bps (wash
    traffic paid none). Version 4 signs fees rounded up: a 19 µNT part's fee is 1, one of 0 is
    refused (``amounts``). A version-3 receipt (made before, the same layout under its own
    domain) still verifies by its own rule, rounded down, and its rule only."""
    base = make_receipt(amounts=[19])
    assert (base["v"], base["parts"][0]["fee"], reason(Found(base))) == (4, 1, "valid")
    assert reason(Found(_resigned(base, Money("user", 500, 19), [(19, 0)]))) == "amounts"
    old = _resigned(base, Money("user", 500, 19), [(19, 0)], version=3)
    assert (old["v"], reason(Found(old))) == (3, "valid")
    assert reason(Found(_resigned(base, Money("user", 500, 19), [(19, 1)], version=3))) == (
        "amounts"
    )
    assert reason(Found({**old, "v": 4})) == "gateway_signature"  # relabelled: another domain


def test_a_receipt_not_settled_states_no_amounts() -> None:
    """Settlement off: ``settled`` false and no amount at all; one added is not believed."""
    r = make_receipt()
    assert r["settled"] is False and "cost" not in r and "payer" not in r
    assert "amount" not in r["parts"][0] and "fee" not in r["parts"][0]
    assert reason(Found(r)) == "valid"
    for extra in ({"cost": 5}, {"payer": "user"}, {"fee_bps": 500}):
        assert reason(Found({**r, **extra})) == "malformed", extra
    added = copy.deepcopy(r)
    added["parts"][0]["amount"] = 5
    assert reason(Found(added)) == "malformed"
    settled = {**r, "settled": True, "payer": "user", "fee_bps": 500, "cost": 0}
    settled["parts"] = [{**r["parts"][0], "amount": 0, "fee": 0}]
    assert reason(Found(settled)) == "gateway_signature"


def test_an_old_version_2_receipt_still_verifies() -> None:
    """A receipt made before version 3 (by the code at 8a05951, kept as it was): no amounts
    signed; it verifies as before, and amounts added to it are refused."""
    old = json.loads((Path(__file__).parent / "receipt_v2_answer.json").read_text())
    receipt_json = old["mesh"]["receipt"]
    assert receipt_json["v"] == 2 and "settled" not in receipt_json
    text = json.dumps(old)
    receipt = verify(find_receipt(text), KEYS, request_id="alice-session-42", require_signed=True)
    assert (receipt.version, receipt.money) == (2, None)
    assert receipt.to_json() == receipt_json  # read and written back unchanged
    assert reason(text, request_id="bob-session-7") == "request_id"
    for extra in ({"cost": 0}, {"settled": False}):
        assert reason(Found({**receipt_json, **extra})) == "malformed", extra
    upgraded = {**receipt_json, "v": 3, "settled": False}  # relabelled: not what was signed
    assert reason(Found(upgraded)) == "gateway_signature"


def _says(found: Found) -> str:
    """The message ``receipt verify`` prints after the reason."""
    try:
        verify(found, KEYS)
    except ReceiptError as exc:
        return f"{exc.reason}: {exc}"
    return "valid"


def test_each_amounts_refusal_in_its_words() -> None:
    base = make_receipt(amounts=[100])
    assert _says(Found(_resigned(base, Money("user", 500, 101), [(100, 5)]))) == (
        "amounts: the parts' amounts add up to 100, not 101"
    )
    assert _says(Found(_resigned(base, Money("user", 500, 100), [(100, 6)]))) == (
        "amounts: part 0: fee 6 is not 500 bps of amount 100"
    )
    invalid = copy.deepcopy(base)
    invalid["parts"][0].update(status="invalid", reason="usage")
    assert _says(Found(_resigned(invalid, Money("user", 500, 100), [(100, 5)]))) == (
        "amounts: part 0 is invalid and charged 100"
    )


def test_each_malformed_amount_in_its_words() -> None:
    r = make_receipt(amounts=[100])
    assert _says(Found({**r, "settled": 1})) == "malformed: settled is not true or false"
    assert _says(Found({**r, "payer": "nobody"})) == "malformed: payer is not one of user, pool"
    unsettled = make_receipt()
    assert _says(Found({**unsettled, "cost": 0})) == (
        "malformed: a receipt not settled has no payer, fee_bps or cost"
    )
    fee_only = copy.deepcopy(unsettled)
    fee_only["parts"][0]["fee"] = 0  # a fee alone, not signed either
    assert _says(Found(fee_only)) == (
        "malformed: a part of a receipt that signs no amounts has an amount"
    )
    old = json.loads((Path(__file__).parent / "receipt_v2_answer.json").read_text())
    v2 = old["mesh"]["receipt"]
    assert _says(Found({**v2, "settled": True})) == (
        "malformed: a version-2 receipt signs no amounts"
    )
