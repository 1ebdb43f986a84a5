"""The verifier alone on published rows (`Auditor.rows`, the export's arrays; no database, no HTTP): a clean ledger passes, each tampering is named.

Rows are built with the writer's own entry code (``make_entry``) and signed checkpoints
(``sign_checkpoint``); a tampering is applied to the rows as published, as an attacker
with write access to the table would (recomputing the leaf hash where it says so).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.ledger_audit import Auditor, Report
from LLM_Mesh.core.ledger_entry import (
    ENTRY_FIELDS,
    GENESIS_PREV,
    MINT,
    Transfer,
    entry_leaf,
    make_entry,
    pseudonym,
)
from LLM_Mesh.core.merkle import leaf_hash, root_of

ORIGIN = "audit.test/ledger"
ALICE, BOB = pseudonym("user", "alice"), pseudonym("operator", "bob")
Row = list[object]


def _ledger(n: int, signed_at: tuple[int, ...]) -> tuple[list[Row], list[dict[str, object]], str]:
    """``n`` rows (a grant, then settlements), checkpoints at ``signed_at``, the key."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rows: list[Row] = []
    leaves: list[bytes] = []
    prev = GENESIS_PREV
    for seq in range(n):
        t = (
            Transfer("grant", MINT, ALICE, 1_000_000)
            if seq == 0
            else Transfer("settle", ALICE, BOB, 10 + seq, request_id=f"req-{seq}")
        )
        entry, prev = make_entry(seq, 1_000 + seq, t, prev)
        rows.append(list(entry.to_row()))
        leaves.append(prev)
    cps = []
    for size in signed_at:
        cp = sign_checkpoint(key, pub, ORIGIN, size, root_of(leaves[:size]), 5)
        cps.append(
            {"tree_size": size, "root_hash": cp.root_hash.hex(), "note": cp.note,
             "public_key": base64.b64encode(pub).decode()}
        )  # fmt: skip
    return rows, cps, base64.b64encode(pub).decode()


def _audit(rows: list[Row], cps: list[dict[str, object]], key: str, batch: int = 7) -> Report:
    auditor = Auditor(cps, [key], ORIGIN)
    for i in range(0, len(rows), batch):
        auditor.rows(rows[i : i + batch])
    return auditor.finish()


def _rehash(row: Row) -> None:
    """Recompute a row's leaf hash from its fields (an attacker covering a change)."""
    fields: list[Any] = row[:8]
    row[9] = leaf_hash(entry_leaf(*fields, bytes.fromhex(str(row[8])))).hex()


def _kinds(report: Report) -> set[str]:
    return {f.kind for f in report.findings}


def test_a_clean_ledger_passes_in_rows_or_objects_in_any_batches() -> None:
    rows, cps, key = _ledger(40, (16, 33, 40))
    for batch in (1, 7, 40):
        report = _audit(rows, cps, key, batch)
        assert report.ok, report.findings
        assert report.entries == 40 and report.checkpoints == 3
        assert report.balances[BOB] == sum(10 + s for s in range(1, 40))
        assert report.balances[MINT] == -1_000_000
    auditor = Auditor(cps, [key], ORIGIN)
    for row in rows:  # GET /v1/ledger's objects
        auditor.entry(dict(zip(ENTRY_FIELDS, row, strict=True)))
    report = auditor.finish()
    assert report.ok and report.entries == 40


def test_uppercase_hex_is_the_same_hash() -> None:
    rows, cps, key = _ledger(5, (5,))
    rows[2][8] = str(rows[2][8]).upper()
    rows[3][9] = str(rows[3][9]).upper()
    assert _audit(rows, cps, key).ok


Tamper = Callable[[list[Row]], list[Row]]


def _change_amount(rows: list[Row]) -> list[Row]:
    rows[5][5] = 1
    return rows


def _delete_row(rows: list[Row]) -> list[Row]:
    return rows[:4] + rows[5:]


def _swap_rows(rows: list[Row]) -> list[Row]:  # rows 5 and 6 swap their seq
    rows[5][0], rows[6][0] = 6, 5
    return [*rows[:5], rows[6], rows[5], *rows[7:]]


def _break_chain(rows: list[Row]) -> list[Row]:
    rows[6][8] = "ab" * 32
    _rehash(rows[6])
    return rows


def _back_in_time(rows: list[Row]) -> list[Row]:
    rows[7][1] = 3
    _rehash(rows[7])
    return rows


def _zero_amount(rows: list[Row]) -> list[Row]:
    rows[3][5] = 0
    _rehash(rows[3])
    return rows


def _to_itself(rows: list[Row]) -> list[Row]:
    rows[3][4] = ALICE
    _rehash(rows[3])
    return rows


def _overdraw(rows: list[Row]) -> list[Row]:
    rows[2][5] = 2_000_000
    _rehash(rows[2])
    return rows


def _malformed(rows: list[Row]) -> list[Row]:
    rows[4] = rows[4][:9]
    rows[8][0] = None
    return rows


def _truncate(rows: list[Row]) -> list[Row]:
    return rows[:10]


@pytest.mark.parametrize(
    ("tamper", "kind", "says"),
    [
        (_change_amount, "changed", "entry 5 was changed"),
        (_delete_row, "missing", "entry 4 is missing"),
        (_swap_rows, "reordered", "entry 5 is the entry written as 6 (rows reordered)"),
        (_break_chain, "chain", "entry 6: prev_hash is not entry 5's leaf hash"),
        (_back_in_time, "time", "entry 7 is older than the entry before it"),
        (_zero_amount, "amount", "entry 3: amount 0 is not a whole number >= 1"),
        (_to_itself, "amount", f"entry 3 moves 13 from {ALICE} to itself"),
        (_overdraw, "balance", f"entry 2: account {ALICE} goes below zero"),
        (_malformed, "changed", "entry #4: malformed"),
        (_truncate, "truncated", "checkpoint at size 16 covers entries not published"),
    ],
)
def test_each_tampering_is_named(tamper: Tamper, kind: str, says: str) -> None:
    rows, cps, key = _ledger(16, (8, 16))
    report = _audit(tamper(rows), cps, key)
    assert not report.ok
    assert any(f.kind == kind and says in f.message for f in report.findings), report.findings
    if tamper not in (_truncate, _overdraw, _zero_amount, _to_itself, _back_in_time):
        # the signed roots no longer match the entries (or the entries stop short)
        assert _kinds(report) & {"root", "truncated"}, report.findings


def test_a_recomputed_leaf_still_breaks_the_signed_root() -> None:
    rows, cps, key = _ledger(16, (8, 16))
    rows[2][5] = 11  # changed, and its leaf hash recomputed: the chain and root catch it
    _rehash(rows[2])
    report = _audit(rows, cps, key)
    assert {"chain", "root"} <= _kinds(report), report.findings


def test_a_wrong_signature_is_named() -> None:
    rows, cps, _key = _ledger(8, (8,))
    other = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    report = _audit(rows, cps, other)
    assert _kinds(report) == {"signature"}
