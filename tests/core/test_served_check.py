"""What an operator's nodes served against what the public log paid its account
(``core/served_check.py``): each attack is a registry that skips paying a served request,
pays it to another account, or pays less than the published price; an honest history of
the same requests passes (the fee, a continued stream, a client-chosen id's key)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.ledger_statement import PENDING_S
from LLM_Mesh.core.pricing import part_costs, split
from LLM_Mesh.core.served import Served, ledger_key, ledger_suffix
from LLM_Mesh.core.served_check import expected_share, published_price, served_report

MODEL = "gemma-3-270m"
ME = "operator:" + "1" * 32
THEM = "operator:" + "2" * 32
USER = "user:" + "3" * 24
FEE_BPS = 500
NOW_US = 1_800_000_000_000_000
OLD_MS = NOW_US // 1000 - 3_600_000  # an hour before the newest signed checkpoint


def _rid(n: int) -> str:
    return f"req-{n:016x}{n:016x}"


def _served(n: int, **kw: Any) -> Served:
    base: dict[str, Any] = {
        "time_ms": OLD_MS, "node": "node-a", "request_id": _rid(n), "model": MODEL,
        "prompt_tokens": 40, "completion_tokens": 25, "outcome": "ok", "gateway": "reg-1",
    }  # fmt: skip
    base.update(kw)
    return Served(**base)


class Log:
    """A ledger's entries as the audit hands them over: by key, and the account's."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def pay(self, r: Served, to: str = ME, *, less: int = 0, key: str | None = None,
            kind: str = "settle", fee_bps: int = FEE_BPS) -> None:  # fmt: skip
        """What honest settlement writes for ``r`` (its share, its fee), ``less`` short."""
        price = published_price(r.model)
        amount = part_costs(price, 0 if r.continued else r.prompt_tokens, [r.completion_tokens])[0]
        share, fee = split(amount, fee_bps)
        rid = key or r.request_id
        for k, frm, dest, amt in ((kind, USER, to, share - less), ("fee", USER, "network", fee)):
            if amt > 0:
                self.entries.append({"seq": len(self.entries), "time_us": OLD_MS * 1000 + 5,
                                     "kind": k, "from": frm, "to": dest, "amount": amt,
                                     "request_id": rid, "receipt_hash": "ab" * 32})  # fmt: skip

    def report(self, records: list[Served], strict: bool = False) -> Any:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for e in self.entries:
            by_key.setdefault(ledger_key(e["request_id"]), []).append(e)
        credits = [e for e in self.entries if e["to"] == ME]
        return served_report(ME, records, by_key, credits, price_of=published_price,
                             fee_bps=FEE_BPS, signed_time_us=NOW_US, strict=strict)  # fmt: skip


def test_the_published_price_less_the_fee_is_what_is_owed() -> None:
    spec = get_spec(MODEL)
    assert spec is not None
    r = _served(1)
    whole = -(-(40 * spec.prompt_price_per_1k + 25 * spec.completion_price_per_1k) // 1000)
    assert expected_share(spec.price, r, FEE_BPS) == whole + (-whole * FEE_BPS // 10_000) > 0
    cont = _served(1, continued=True)  # held to its completion only (its prompt: not its own)
    assert expected_share(spec.price, cont, FEE_BPS) < expected_share(spec.price, r, FEE_BPS)


def test_an_honest_history_passes() -> None:
    log, records = Log(), [_served(1), _served(2, continued=True), _served(3)]
    for r in records:
        log.pay(r)
    # a client-chosen id: settled under c-…~<the node id's first 16 hex>.<tag>
    client = _served(4)
    log.pay(client, key=f"c-{'e' * 24}~{ledger_suffix(client.request_id)}.0badc0de")
    records.append(client)
    # a stream continued on a second node of the same operator: two records, two shares
    first, second = _served(5, node="node-a"), _served(5, node="node-b", continued=True)
    log.pay(first)
    log.pay(second)
    records += [first, second, _served(6, outcome="cancelled"), _served(7, outcome="error")]
    records.append(_served(8, gateway=""))  # a standalone node's local client: nobody pays
    rep = log.report(records)
    assert rep.ok, rep.findings
    assert rep.requests == 5 and rep.not_judged == 3
    assert rep.paid == rep.expected > 0 and rep.unmatched == 0
    assert not rep.pending and not rep.held


def test_a_registry_that_skips_paying_a_served_request_fails() -> None:
    log, records = Log(), [_served(1), _served(2)]
    log.pay(records[0])
    rep = log.report(records)
    assert not rep.ok
    assert len(rep.findings) == 1 and _rid(2) in rep.findings[0]
    assert "no entry of the whole log pays it" in rep.findings[0]
    # the same for a client-chosen id: a key of another request does not pay it
    client, log = _served(3), Log()
    log.pay(_served(4), key=f"c-{'e' * 24}~{ledger_suffix(_rid(4))}.0badc0de")
    rep = log.report([client])
    assert not rep.ok and _rid(3) in rep.findings[0]
    assert rep.unmatched == 1  # a credit no record explains: listed, not a finding


def test_one_entry_under_a_shared_suffix_pays_one_request_not_two() -> None:
    """A registry that gave two requests' nodes ids with the same first 16 hex digits, and
    paid one client-chosen id's entry: it counts for one of them."""
    log = Log()
    a, b = _served(1), _served(1).request_id[:20] + "f" * 16
    twin = _served(2, request_id=b)
    log.pay(a, key=f"c-{'e' * 24}~{ledger_suffix(a.request_id)}.0badc0de")
    rep = log.report([a, twin])
    assert not rep.ok and len(rep.findings) == 1


def test_a_registry_that_pays_a_served_request_to_another_account_fails() -> None:
    log, r = Log(), _served(1)
    log.pay(r, to=THEM)
    rep = log.report([r])
    assert not rep.ok
    assert "paid to another account" in rep.findings[0] and THEM in rep.findings[0]


def test_a_registry_that_pays_less_than_the_price_fails() -> None:
    for less in (1, 10):
        log, r = Log(), _served(1)
        log.pay(r, less=less)
        rep = log.report([r])
        assert not rep.ok, less
        assert "the published price of the tokens served" in rep.findings[0]
        assert rep.expected - rep.paid == less
    # the prompt left out of a first part: paid as if it had continued another's stream
    log, r = Log(), _served(2)
    log.pay(_served(2, continued=True))
    assert not log.report([r]).ok
    # a whole fee higher than the operator's own (--fee-bps: strict); not its word, but the
    # registry's fee of now: said, not a finding (it may be a fee of before a change)
    log, r = Log(), _served(3)
    log.pay(r)
    for strict in (True, False):
        rep = served_report(ME, [r], {r.request_id: log.entries}, log.entries, strict=strict,
                            price_of=published_price, fee_bps=0, signed_time_us=NOW_US)  # fmt: skip
        assert rep.ok is not strict and len(rep.other_fee) == (not strict)


def test_a_request_newer_than_the_pending_window_is_pending_not_a_finding() -> None:
    log = Log()
    new = _served(1, time_ms=NOW_US // 1000 - (PENDING_S - 5) * 1000)
    rep = log.report([new])
    assert rep.ok and len(rep.pending) == 1
    old = _served(2, time_ms=NOW_US // 1000 - (PENDING_S + 5) * 1000)
    assert not log.report([old]).ok
    # no signed checkpoint at all: everything unpaid is pending
    rep = served_report(ME, [old], {}, [], price_of=published_price, fee_bps=FEE_BPS,
                        signed_time_us=None)  # fmt: skip
    assert rep.ok and rep.pending


def test_a_quarantined_nodes_held_share_is_said_not_judged() -> None:
    log, r = Log(), _served(1)
    log.pay(r, to="held:" + "4" * 32, kind="hold")
    rep = log.report([r])
    assert rep.ok and len(rep.held) == 1 and "quarantined" in rep.held[0]


def test_a_request_without_a_completion_is_owed_nothing() -> None:
    rep = Log().report([_served(1, completion_tokens=0)])
    assert rep.ok and rep.requests == 0


def test_a_fee_change_does_not_make_an_old_honest_payment_a_finding() -> None:
    """Requests cut at 800 bps before the registry lowered its fee to the 500 it publishes
    now: their own entries state the fee (the ``fee`` after each ``settle``) and the price
    held, so they are said, not findings (found 2026-12-05: judged at today's fee, every
    older payment looked underpaid); with the operator's own ``--fee-bps`` (strict) they are."""
    log, old, new = Log(), _served(1), _served(2)
    log.pay(old, fee_bps=800)
    log.pay(new)
    rep = log.report([old, new])
    assert rep.ok, rep.findings
    assert len(rep.other_fee) == 1 and _rid(1) in rep.other_fee[0]
    lo, hi = map(int, re.search(r"\((\d+) to (\d+) bps\)", rep.other_fee[0]).groups())  # type: ignore[union-attr]
    assert lo <= 800 <= hi and not lo <= FEE_BPS <= hi
    strict = log.report([old, new], strict=True)
    assert not strict.ok and _rid(1) in strict.findings[0] and not strict.other_fee


def test_a_share_cut_below_the_price_is_a_finding_whatever_fee_its_entries_state() -> None:
    """Another fee explains a smaller share only where share and fee add up to the price."""
    log, r = Log(), _served(1)
    log.pay(r, fee_bps=800, less=1)
    rep = log.report([r])
    assert not rep.ok and "the published price of the tokens served" in rep.findings[0]
    assert "fee" in rep.findings[0] and not rep.other_fee


def test_a_hold_of_less_than_the_share_or_not_to_a_held_account_is_a_finding() -> None:
    """Found 2026-12-05: any ``hold`` entry of a request made it "held, not judged": a
    registry dodged every unpaid finding with a 1 µNT hold per request (or a ``hold`` to an
    account of its choosing), and the statement exited 0."""
    share = expected_share(published_price(MODEL), _served(1), FEE_BPS)
    for less, to in ((share - 1, "held:" + "4" * 32), (0, THEM)):  # 1 µNT held; all, not held
        log, r = Log(), _served(1)
        log.pay(r, to=to, kind="hold", less=less)
        rep = log.report([r])
        assert not rep.ok and not rep.held, (less, to, rep)
    log, r = Log(), _served(1)  # an honest hold: the whole share, to a held account
    log.pay(r, to="held:" + "4" * 32, kind="hold")
    assert log.report([r]).ok


def test_the_same_record_given_twice_is_owed_once() -> None:
    """Found 2026-12-05: a record read twice (a node's log given again as a copy: a backup,
    the folder the logs were gathered into, a hard link; ``--served`` tells apart only the
    same path) doubled what the request was owed, and an honest registry's every payment
    was reported "paid less" (exit 1)."""
    log, r = Log(), _served(1)
    log.pay(r)
    rep = log.report([r, r])
    assert rep.ok, rep.findings  # before: paid N, owed 2 N
    assert rep.requests == 1 and rep.expected == expected_share(published_price(MODEL), r, FEE_BPS)
    cont = _served(1, node="node-b", continued=True, prompt_tokens=0, completion_tokens=10)
    log.pay(cont)  # a stream continued on another node: two records, both owed
    assert log.report([r, cont, r, cont]).ok


# --- what a registry's GET /v1/pricing binds the check to (registry_prices, keys_of) ---


def test_a_registrys_prices_its_list_then_its_custom_price_then_the_catalogs() -> None:
    from LLM_Mesh.core.pricing import Price
    from LLM_Mesh.core.served_check import registry_prices

    pricing = {
        "network_fee_bps": 250,
        "models": {MODEL: {"prompt_per_1k": 7, "completion_per_1k": 9, "unit": "µNT"}},
        "custom": {"prompt_per_1k": 3, "completion_per_1k": 4},
    }
    fee, price_of = registry_prices(pricing)
    assert fee == 250
    assert price_of(MODEL) == Price(7, 9)  # listed
    assert price_of("my-own-model") == Price(3, 4)  # not in the catalog: the custom price
    from LLM_Mesh.core.catalog import CATALOG

    other = next(spec.id for spec in CATALOG if spec.id != MODEL)
    assert price_of(other) == published_price(other)  # in the catalog, not listed
    fee, price_of = registry_prices({"network_fee_bps": 0, "models": {}})
    assert fee == 0 and price_of("my-own-model") == published_price("my-own-model")
    assert registry_prices({"network_fee_bps": 10_000, "models": {}})[0] == 10_000


@pytest.mark.parametrize(
    ("pricing", "why"),
    [
        ({"models": {}}, "network_fee_bps is not 0 to 10000"),
        ({"network_fee_bps": -1, "models": {}}, "network_fee_bps is not 0 to 10000"),
        ({"network_fee_bps": 10_001, "models": {}}, "network_fee_bps is not 0 to 10000"),
        ({"network_fee_bps": 5.0, "models": {}}, "network_fee_bps is not 0 to 10000"),
        ({"network_fee_bps": True, "models": {}}, "network_fee_bps is not 0 to 10000"),
        ({"network_fee_bps": 5}, "models is not an object"),
        ({"network_fee_bps": 5, "models": []}, "models is not an object"),
        ({"network_fee_bps": 5, "models": {"m": 3}}, "models['m'] is not a price"),
        ({"network_fee_bps": 5, "models": {}, "custom": None}, "custom is not a price"),
        ({"network_fee_bps": 5, "models": {"m": {"prompt_per_1k": -1, "completion_per_1k": 1}}},
         "models['m']: prompt_per_1k must be a whole number >= 0, got -1"),
        ({"network_fee_bps": 5, "models": {}, "custom": {"prompt_per_1k": 1}},
         "custom: completion_per_1k must be a whole number >= 0, got None"),
    ],
)  # fmt: skip
def test_a_pricing_answer_that_is_not_one_is_refused_in_words(
    pricing: dict[str, Any], why: str
) -> None:
    from LLM_Mesh.core.served_check import registry_prices

    with pytest.raises(ValueError) as err:
        registry_prices(pricing)
    assert str(err.value) == f"GET /v1/pricing: {why}"


def test_the_keys_kept_are_every_records_ledger_keys() -> None:
    from LLM_Mesh.core.served_check import keys_of

    a, b = _served(1), _served(2, request_id="alice-session-42")
    assert keys_of([a, b]) == {a.request_id, "~" + ledger_suffix(a.request_id), "alice-session-42"}
    assert keys_of([]) == set()


# --- the words of a report: the fee its entries state, the time, the unexplained credits ---


def _fees_cutting(said: str) -> tuple[range, bool]:
    m = re.fullmatch(r"(\d+)(?: to (\d+))? bps(, rounded down as before 2026-12-06)?", said)
    assert m is not None, said
    return range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1), bool(m.group(3))


@pytest.mark.parametrize(
    "parts",
    [
        [(10_000, 800)],  # one fee exactly
        [(1_000, 80)],  # 791 to 800: rounded up
        [(1_000, 81)],  # 801 to 810 rounded up
        [(1, 0)],  # a 1 µNT part of no fee: 0 bps (rounded up)
        [(1, 1)],  # ... of 1 µNT: any fee above 0
        [(10_000, 0)],  # no fee
        [(0, 0), (10_000, 800)],  # a part of nothing says nothing; the next still counts
        [(1_000, 80), (3_000, 241)],
        [(1_000, 80), (3_000, 240), (12, 0)],  # an old payment: only down explains it
    ],
)
def test_the_fees_said_are_exactly_those_that_cut_every_part_so(
    parts: list[tuple[int, int]],
) -> None:
    """The fees said are those of today's rule (rounded up) when any fits, else those of
    the rule before 2026-12-06 (rounded down, ``money34``), said so."""
    from LLM_Mesh.core.pricing import MAX_FEE_BPS, network_fee, network_fee_down
    from LLM_Mesh.core.served_check import _bps_said

    def fits(fee_of: Any) -> list[int]:
        return [
            bps for bps in range(MAX_FEE_BPS + 1)
            if all(fee_of(a, bps) == f for a, f in parts if a > 0)
        ]  # fmt: skip

    said, down = _fees_cutting(_bps_said(parts))
    assert down == (not fits(network_fee))
    assert list(said) == fits(network_fee_down if down else network_fee)


def test_parts_no_one_fee_cuts_are_said_so() -> None:
    from LLM_Mesh.core.served_check import _bps_said

    assert _bps_said([(10_000, 800), (10_000, 900)]) == (
        "no one fee in basis points cuts them all so"
    )


def test_a_records_time_is_said_in_utc_whatever_the_local_zone(monkeypatch: Any) -> None:
    import time

    from LLM_Mesh.core.served_check import _when

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert _when(0) == "1970-01-01 00:00:00"
        assert _when(1_796_465_700_999) == "2026-12-05 10:15:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_credits_no_record_explains_are_counted_with_their_amounts() -> None:
    credits = [
        {"seq": 10, "kind": "settle", "to": ME, "amount": 5},
        {"seq": 11, "kind": "settle", "to": ME, "amount": 7},
        {"seq": 12, "kind": "settle", "to": ME},  # no amount: 0
        {"seq": 13, "kind": "settle", "to": THEM, "amount": 100},  # not ours
        {"seq": 14, "kind": "fee", "to": ME, "amount": 100},  # not a settlement
    ]
    rep = served_report(ME, [], {}, credits, price_of=published_price, fee_bps=FEE_BPS,
                        signed_time_us=NOW_US)  # fmt: skip
    assert (rep.account, rep.strict) == (ME, False)
    assert (rep.unmatched, rep.unmatched_amount) == (3, 12)


def test_one_fee_is_said_alone() -> None:
    from LLM_Mesh.core.served_check import _bps_said

    assert _bps_said([(10_000, 800)]) == "800 bps"
    assert _bps_said([(1_000, 80)]) == "791 to 800 bps"  # rounded up
    assert _bps_said([(12, 0), (1_000, 80)]) == "800 to 809 bps, rounded down as before 2026-12-06"


def test_the_published_price_is_the_catalogs_else_the_custom_one() -> None:
    from LLM_Mesh.core.catalog import (
        CATALOG,
        CUSTOM_COMPLETION_PRICE_PER_1K,
        CUSTOM_PROMPT_PRICE_PER_1K,
    )
    from LLM_Mesh.core.pricing import Price

    for spec in CATALOG:
        assert published_price(spec.id) == spec.price
    custom = Price(CUSTOM_PROMPT_PRICE_PER_1K, CUSTOM_COMPLETION_PRICE_PER_1K)
    assert published_price("my-own-model") == custom
    assert any(spec.price != custom for spec in CATALOG)  # the test tells them apart


def _name(r: Served) -> str:
    from LLM_Mesh.core.served_check import _when

    return (
        f"request {r.request_id} ({r.model}, {r.completion_tokens} completion tokens, "
        f"served {_when(r.time_ms)} UTC by {r.node})"
    )


def test_a_request_exactly_the_pending_window_old_is_judged() -> None:
    at = _served(1, time_ms=NOW_US // 1000 - PENDING_S * 1000)
    rep = Log().report([at])
    assert not rep.pending and len(rep.findings) == 1
    late = _served(2, time_ms=NOW_US // 1000 - PENDING_S * 1000 + 1)
    assert Log().report([late]).pending == [
        f"{_name(late)}: no entry pays it yet (run again later)"
    ]


def test_each_finding_names_its_entries_word_for_word() -> None:
    r = _served(1)
    owed = expected_share(published_price(MODEL), r, FEE_BPS)
    held_to = "held:" + "4" * 32
    log = Log()
    log.pay(r, to=held_to, kind="hold")
    assert log.report([r]).held == [
        f"{_name(r)}: its share went to held account {held_to} (entry 0): the node was "
        "quarantined; paid to you if the admin clears it"
    ]
    log = Log()
    log.pay(r, to=held_to, kind="hold", less=1)
    assert log.report([r]).findings == [
        f"{_name(r)}: held {owed - 1} µNT in a held account (entry 0: {owed - 1} µNT to "
        f"{held_to}), the published price of the tokens served less the {FEE_BPS} bps fee "
        f"is {owed} µNT"
    ]
    log = Log()
    log.pay(r, to=THEM)
    assert log.report([r]).findings == [
        f"{_name(r)}: owed {owed} µNT, paid to another account (entry 0 to {THEM}), not {ME}"
    ]
    log = Log()
    log.pay(r, less=3)
    fee = log.entries[1]["amount"]
    cost = owed + fee
    assert log.report([r]).findings == [
        f"{_name(r)}: paid {owed - 3} µNT (entry 0: {owed - 3} µNT), the published price of "
        f"the tokens served less the {FEE_BPS} bps fee is {owed} µNT (its entries state a "
        f"{fee} µNT fee: {owed - 3 + fee} µNT of {cost})"
    ]


def test_a_fee_entry_of_another_payer_is_not_the_parts_fee() -> None:
    from LLM_Mesh.core.served_check import _parts

    settle = {"seq": 4, "kind": "settle", "from": USER, "to": ME, "amount": 90}
    theirs = {"seq": 5, "kind": "fee", "from": "user:" + "9" * 24, "amount": 10}
    ours = {"seq": 5, "kind": "fee", "from": USER, "amount": 10}
    assert _parts([settle, theirs], [settle]) == [(90, 0)]
    assert _parts([settle, ours], [settle]) == [(100, 10)]
    assert _parts([settle, {**ours, "amount": None}], [settle]) == [(90, 0)]
    assert _parts([settle, {**ours, "kind": "settle"}], [settle]) == [(90, 0)]
    assert _parts([settle], [settle]) == [(90, 0)]  # no entry after it: a fee of 0
    assert _parts([{**settle, "amount": None}], [{**settle, "amount": None}]) == [(0, 0)]


def _entry(seq: int, kind: str, to: str, amount: int | None, rid: str) -> dict[str, Any]:
    return {"seq": seq, "time_us": OLD_MS * 1000 + 5, "kind": kind, "from": USER, "to": to,
            "amount": amount, "request_id": rid, "receipt_hash": "ab" * 32}  # fmt: skip


def test_findings_list_every_entry_and_count_one_without_an_amount_as_nothing() -> None:
    r = _served(1)
    rid, owed = r.request_id, expected_share(published_price(MODEL), r, FEE_BPS)
    held_to = "held:" + "4" * 32
    log = Log()
    log.entries = [_entry(0, "settle", ME, 20, rid), _entry(1, "settle", ME, 10, rid)]
    assert log.report([r]).findings == [
        f"{_name(r)}: paid 30 µNT (entry 0: 20 µNT, entry 1: 10 µNT), the published price of "
        f"the tokens served less the {FEE_BPS} bps fee is {owed} µNT"
    ]  # no fee entry: no word of a fee
    log.entries = [_entry(0, "settle", THEM, 20, rid), _entry(1, "settle", THEM, 30, rid)]
    assert log.report([r]).findings == [
        f"{_name(r)}: owed {owed} µNT, paid to another account (entry 0 to {THEM}, entry 1 "
        f"to {THEM}), not {ME}"
    ]
    log.entries = [_entry(0, "hold", held_to, 20, rid), _entry(1, "hold", held_to, None, rid)]
    assert log.report([r]).findings == [
        f"{_name(r)}: held 20 µNT in a held account (entry 0: 20 µNT to {held_to}, entry 1: "
        f"None µNT to {held_to}), the published price of the tokens served less the "
        f"{FEE_BPS} bps fee is {owed} µNT"
    ]
    log.entries = [_entry(0, "settle", ME, None, rid)]
    rep = log.report([r])
    assert rep.paid == 0 and rep.findings[0].startswith(f"{_name(r)}: paid 0 µNT (entry 0: ")


def test_a_payment_at_another_fee_is_said_word_for_word() -> None:
    from LLM_Mesh.core.served_check import _bps_said

    log, r = Log(), _served(1)
    log.pay(r, fee_bps=800)
    share, fee = log.entries[0]["amount"], log.entries[1]["amount"]
    owed = expected_share(published_price(MODEL), r, FEE_BPS)
    assert log.report([r]).other_fee == [
        f"{_name(r)}: paid {share} µNT (entry 0: {share} µNT): its entries state a {fee} µNT "
        f"fee of {share + fee} µNT ({_bps_said([(share + fee, fee)])}), not the {FEE_BPS} "
        f"bps fee ({owed} µNT to you)"
    ]


def test_a_request_served_in_two_parts_names_both_nodes() -> None:
    a = _served(1, node="node-b")
    b = _served(1, node="node-a", continued=True, time_ms=OLD_MS + 1000)
    rep = Log().report([a, b])
    assert len(rep.findings) == 1
    assert rep.findings[0].startswith(
        f"request {a.request_id} ({MODEL}, 50 completion tokens, served "
        f"{_name(b).split('served ')[1].split(' UTC')[0]} UTC by node-a, node-b): owed "
    )
    assert rep.findings[0].endswith(", and no entry of the whole log pays it (0 entries name it)")
