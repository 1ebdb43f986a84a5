"""``ReceiptWatch.agreed`` and ``.unchecked``: the lines ``ledger verify --receipt`` says of a
receipt it held."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from LLM_Mesh.cli.ledger_receipts import ReceiptWatch
from LLM_Mesh.core.ledger_audit import Report


def watch(entries: int, money: Any = "signed") -> ReceiptWatch:
    w = ReceiptWatch([], [])
    rh = "ab" * 32
    r: Any = SimpleNamespace(receipt_hash=rh, request_id="req-1", money=money, version=4)
    w.receipts = [r]
    w.held = {rh: [(seq,) for seq in range(entries)]}
    return w


def version_2(charged: bool) -> ReceiptWatch:
    """A watch of one version-2 receipt (it signs no amounts), with a settle and a fee of
    the log under it when ``charged``."""
    w = watch(0, money=None)
    w.receipts[0].version = 2
    (rh,) = w.held
    user = "user:" + "a" * 24
    if charged:
        w.held[rh] = [(5, 1, "settle", user, "operator:x", 95, "req-1", rh, "", ""),
                      (6, 1, "fee", user, "network", 5, "req-1", rh, "", "")]  # fmt: skip
    return w


def test_one_entry_and_several_are_said_in_english() -> None:
    """Found 2026-12-06 (newuser33, README's ``llm-mesh ledger verify --receipt
    answer.json`` on a pool-paid answer whose fee rounds to 0): ``the 1 entry of the log
    that name it charge what it signs``."""
    (one,) = watch(1).agreed(signed=10)
    assert one.endswith("the 1 entry of the log that names it charges what it signs"), one
    (two,) = watch(2).agreed(signed=10)
    assert two.endswith("the 2 entries of the log that name it charge what it signs"), two


def test_a_receipt_that_signs_no_amounts_is_no_finding() -> None:
    """Found 2026-12-07 (money41): ``ledger verify --receipt answer.json`` of an answer from
    a registry run with ``LLM_MESH_SETTLEMENT=0`` (nobody charged, the receipt says so) was
    ``MISMATCH: 1 findings``, exit 1, for "nothing to compare" (as ``receipt verify --ledger``
    says it and exits 0)."""
    w = watch(0, money=None)
    report = Report()
    w.judge(report)
    assert report.findings == [], report.findings
    (line,) = w.agreed(signed=0)
    assert line.endswith("the receipt signs no amounts (not settled, or version 1 or 2): "
                         "nothing to compare"), line  # fmt: skip


def test_a_payment_under_a_receipt_signed_not_settled_is_a_finding() -> None:
    """Found 2026-12-07 (review41c): since money41 a receipt that signs no amounts was no
    finding whatever the log held: a registry that signs "not settled" (its choice, per
    answer) while it debits the user under that receipt passed ``ledger verify --receipt``."""
    w = watch(0, money=None)
    (rh,) = w.held
    w.held[rh] = [(5, 1, "settle", "user:" + "a" * 24, "operator:x", 40, "req-1", rh, "", "")]
    report = Report()
    w.judge(report)
    (f,) = report.findings
    assert f.kind == "receipt" and "entry 5 (settle) takes 40 µNT" in f.message, f
    assert "signs that it was not settled" in f.message, f


def test_a_payment_under_a_version_2_receipt_is_said_unchecked() -> None:
    """Found 2026-12-07 (money42): a version-2 receipt (it signs no amounts) with entries
    paying under it was said "nothing to compare", as if nothing was charged. Now each is
    named with its amount, as a charge that cannot be checked (a note, not a finding:
    old data an honest registry made)."""
    w = version_2(charged=True)
    report = Report()
    w.judge(report)
    assert report.findings == [], report.findings
    (line,) = w.unchecked()
    assert "CANNOT BE CHECKED: entries 5 (settle, 95 µNT), 6 (fee, 5 µNT) take 100 µNT" in line
    assert "version-2 receipt, which signs no amounts" in line and "nothing to" not in line


def test_a_charge_that_cannot_be_checked_is_not_said_to_agree() -> None:
    """Found 2026-12-07 (review42): ``ledger verify --receipt`` printed every line of
    :meth:`ReceiptWatch.agreed` as ``OK:`` in green, and since money42 that list held the
    note of a version-2 receipt with charges under it: ``OK: receipt …: CANNOT BE CHECKED:
    entries … take 100 µNT``. Such a note is :meth:`ReceiptWatch.unchecked`'s (said as
    ``unchecked``), not an agreement; a receipt with no charge under it still agrees."""
    w = version_2(charged=True)
    assert w.agreed(signed=10) == [], w.agreed(signed=10)
    (note,) = w.unchecked()
    assert "CANNOT BE CHECKED: entries 5 (settle, 95 µNT), 6 (fee, 5 µNT) take 100 µNT" in note
    quiet = version_2(charged=False)
    assert quiet.unchecked() == [] and len(quiet.agreed(signed=10)) == 1
