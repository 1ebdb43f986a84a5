"""The ledger audit's checkpoints: signatures and keys, roots, truncation, consistency and
inclusion proofs, and a history rewritten, cut or passed off against what was seen before."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.ledger_audit import Auditor
from LLM_Mesh.core.ledger_entry import (
    GENESIS_PREV,
    MINT,
    Transfer,
    make_entry,
)
from LLM_Mesh.core.merkle import EMPTY_ROOT, root_of
from tests.core.ledger_audit_fixtures import (
    ALICE,
    BOB,
    ORIGIN,
    Entry,
    Registry,
    audit,
    inclusion_path,
    kinds,
    ledger,
    subproof,
)

# --- checkpoints, signatures, proofs --------------------------------------------------


def test_a_checkpoint_by_an_unpublished_key_is_named_signature_and_not_trusted() -> None:
    entries, leaves = ledger(4)
    reg, other = Registry(), Registry()
    a = audit(entries, [other.checkpoint(4, root_of(leaves))], reg)
    report = a.finish()
    assert [f.message for f in report.findings] == [
        "checkpoint at size 4: signed by a key the registry does not publish"
    ]
    assert a.signed_sizes == [] and report.checkpoints == 1


def test_a_checkpoint_by_another_key_than_the_pinned_one_says_so() -> None:
    """``ledger verify --key``: found 2026-12-02, a checkpoint signed by the registry's
    published key, checked against another key the user pinned, was reported as "signed
    by a key the registry does not publish" (the registry does publish it)."""
    entries, leaves = ledger(4)
    reg, pinned = Registry(), Registry()
    a = Auditor([reg.checkpoint(4, root_of(leaves))], pinned.keys, ORIGIN, pinned=True)
    for e in entries:
        a.entry(e)
    assert [f.message for f in a.finish().findings] == [
        "checkpoint at size 4: signed by another key than the pinned one"
    ]
    assert a.signed_sizes == []


def test_a_checkpoint_with_a_published_key_but_another_keys_signature_is_named() -> None:
    entries, leaves = ledger(4)
    reg, other = Registry(), Registry()
    forged = other.checkpoint(4, root_of(leaves), public_key=reg.keys[0])
    a = audit(entries, [forged], reg)
    assert kinds(a.finish()) == ["signature"] and a.signed_sizes == []


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"tree_size": 3}, ": its note says another size or root than its record"),
        ({"root_hash": "00" * 32}, ": its note says another size or root than its record"),
        ({"note": "garbage"}, ": not a signed note"),
    ],
)
def test_a_checkpoint_whose_record_and_note_disagree_is_named_signature(
    override: dict[str, object], why: str
) -> None:
    entries, leaves = ledger(4)
    reg = Registry()
    a = audit(entries, [reg.checkpoint(4, root_of(leaves), **override)], reg)
    report = a.finish()
    assert kinds(report) == ["signature"] and report.findings[0].message.startswith(
        f"checkpoint at size {override.get('tree_size', 4)}{why}"
    )
    assert a.signed_sizes == []


def test_a_checkpoint_with_an_undecodable_key_is_named_signature() -> None:
    reg = Registry()
    a = audit([], [reg.checkpoint(0, EMPTY_ROOT, public_key="!!not base64")], reg)
    assert kinds(a.finish()) == ["signature"]


def test_a_signed_root_that_is_not_the_entries_root_is_named_root() -> None:
    entries, leaves = ledger(5)
    reg = Registry()
    wrong = root_of(leaves[:2] + leaves[3:] + leaves[2:3])
    report = audit(
        entries, [reg.checkpoint(2, root_of(leaves[:2])), reg.checkpoint(5, wrong)], reg
    ).finish()
    assert [f.message for f in report.findings] == [
        "checkpoint at size 5: root is not the entries' root"
    ]


def test_a_checkpoint_beyond_the_published_entries_is_named_truncated() -> None:
    entries, leaves = ledger(6)
    reg = Registry()
    cps = [reg.checkpoint(4, root_of(leaves[:4])), reg.checkpoint(6, root_of(leaves))]
    assert audit(entries, cps, reg).finish().ok
    report = audit(entries[:5], cps, reg).finish()
    assert [(f.kind, f.message) for f in report.findings] == [
        ("truncated", "checkpoint at size 6 covers entries not published (only 5)")
    ]


def test_consistency_proofs_between_signed_checkpoints() -> None:
    entries, leaves = ledger(13)
    reg = Registry()
    cps = [reg.checkpoint(n, root_of(leaves[:n])) for n in (4, 7, 13)]
    a = audit(entries, cps, reg)
    a.consistency(4, 7, subproof(4, leaves[:7], True))
    a.consistency(7, 13, subproof(7, leaves, True))
    assert a.report.ok and a.report.consistency_proofs == 2
    a.consistency(4, 13, subproof(7, leaves, True))  # a proof for another pair
    assert [f.message for f in a.report.findings] == ["checkpoints 4 -> 13: proof fails"]


@pytest.mark.parametrize(("first", "second"), [(5, 7), (4, 8), (5, 8)])
def test_a_consistency_proof_with_an_unsigned_end_fails(first: int, second: int) -> None:
    entries, leaves = ledger(8)
    reg = Registry()
    a = audit(entries, [reg.checkpoint(n, root_of(leaves[:n])) for n in (4, 7)], reg)
    a.consistency(first, second, subproof(first, leaves[:second], True))
    assert kinds(a.report) == ["consistency"] and a.report.consistency_proofs == 1


def test_an_inclusion_proof_of_a_checkpoints_last_entry() -> None:
    entries, leaves = ledger(11)
    reg = Registry()
    a = audit(entries, [reg.checkpoint(n, root_of(leaves[:n])) for n in (6, 11)], reg)
    a.inclusion(6, inclusion_path(5, leaves[:6]))
    a.inclusion(11, inclusion_path(10, leaves))
    assert a.report.ok and a.report.inclusion_proofs == 2
    a.inclusion(11, inclusion_path(9, leaves))  # the proof of another entry
    assert [f.message for f in a.report.findings] == ["entry 10 in checkpoint 11: proof fails"]


def test_an_inclusion_proof_needs_a_signed_checkpoint_and_its_entry() -> None:
    entries, leaves = ledger(6)
    reg = Registry()
    a = audit(entries, [reg.checkpoint(6, root_of(leaves))], reg)
    a.inclusion(5, inclusion_path(4, leaves[:5]))  # no checkpoint at 5
    assert kinds(a.report) == ["inclusion"]
    # the checkpoint at 6 is signed, but its entries were not published: no leaf to prove
    b = audit(entries[:5], [reg.checkpoint(6, root_of(leaves))], reg)
    b.inclusion(6, inclusion_path(5, leaves))
    assert kinds(b.report) == ["inclusion"]


def test_the_inclusion_proof_is_of_the_auditors_own_leaf_not_the_published_one() -> None:
    entries, leaves = ledger(4)
    reg = Registry()
    entries[3]["leaf_hash"] = "00" * 32  # published leaf hash lies; the fields are honest
    a = audit(entries, [reg.checkpoint(4, root_of(leaves))], reg)
    a.inclusion(4, inclusion_path(3, leaves))
    assert kinds(a.report) == ["changed"]  # the proof itself holds for the computed leaf


# --- a registry that rewrites its history and re-signs every checkpoint ----------------


def _rewritten(n: int, reg: Registry) -> tuple[list[Entry], list[dict[str, object]]]:
    """The ledger of :func:`ledger` with entry 1's amount changed, every hash recomputed
    and every checkpoint re-signed with the registry's own key (self-consistent)."""
    transfers = [Transfer("grant", MINT, ALICE, 1_000_000)] + [
        Transfer("settle", ALICE, BOB, 1 if i == 0 else 10 + i, request_id=f"req-{i}")
        for i in range(n - 1)
    ]
    entries, leaves, prev = [], [], GENESIS_PREV
    for seq, t in enumerate(transfers):
        e, prev = make_entry(seq, 1_000 + seq, t, prev)
        entries.append(e.to_json())
        leaves.append(prev)
    return entries, [reg.checkpoint(k, root_of(leaves[:k])) for k in (4, n)]


def test_a_rewritten_and_re_signed_history_is_named_against_what_was_seen_before() -> None:
    reg = Registry()
    entries, leaves = ledger(8)
    seen = (6, root_of(leaves[:6]))  # what an earlier `ledger verify` saw signed
    forged, forged_cps = _rewritten(8, reg)
    assert audit(forged, forged_cps, reg).finish().ok  # alone, nothing to see
    a = Auditor(forged_cps, reg.keys, ORIGIN, remembered=seen)
    for e in forged:
        a.entry(e)
    assert kinds(a.finish()) == ["root"]  # the entries no longer hash to the root seen
    also = Auditor([*forged_cps, reg.checkpoint(6, root_of(leaves[:6]) [::-1])], reg.keys,
                   ORIGIN, remembered=seen)  # fmt: skip
    assert "rewritten" in kinds(also.report)
    honest = Auditor([reg.checkpoint(8, root_of(leaves))], reg.keys, ORIGIN, remembered=seen)
    for e in entries:
        honest.entry(e)
    assert honest.finish().ok and 6 in honest.signed_sizes


def test_a_history_cut_below_what_was_seen_is_named_truncated() -> None:
    reg = Registry()
    entries, leaves = ledger(8)
    a = Auditor([reg.checkpoint(5, root_of(leaves[:5]))], reg.keys, ORIGIN,
                remembered=(8, root_of(leaves)))  # fmt: skip
    for e in entries[:5]:
        a.entry(e)
    assert kinds(a.finish()) == ["truncated"]


def test_a_signed_size_0_checkpoint_of_another_root_is_named(
) -> None:  # fmt: skip
    """found 2026-12-05 (attack32): a checkpoint of size 0 is checked against no entry (a
    root is compared when an entry is pushed), so one signed over any root passed `ledger
    verify`, was exported to other verifiers as the one checked, and its empty consistency
    proof to the next checkpoint held. It failed before the fix: no finding."""
    entries, leaves = ledger(4)
    reg = Registry()
    bogus = b"\x42" * 32
    a = audit(entries, [reg.checkpoint(0, bogus), reg.checkpoint(4, root_of(leaves))], reg)
    a.consistency(0, 4, [])
    report = a.finish()
    assert kinds(report) == ["root", "consistency"], report.findings
    assert "size 0: root is not the empty tree's" in report.findings[0].message
    alone = audit([], [reg.checkpoint(0, bogus)], reg).finish()
    assert kinds(alone) == ["root"] and alone.checkpoint is None
    honest = audit(
        entries, [reg.checkpoint(0, EMPTY_ROOT), reg.checkpoint(4, root_of(leaves))], reg
    )
    honest.consistency(0, 4, [])
    assert honest.finish().ok


def test_an_identity_proof_passed_off_as_a_checkpoint_is_a_signature_finding() -> None:
    """found 2026-12-05 (attack32): `ledger verify` takes the origin from the registry's
    `GET /v1/ledger/keys` answer; whoever answers it (a man in the middle of plain http,
    with the user's `--key` pinned) names as origin the first line of a note made of the
    registry's public identity proof (`GET /mesh/identity`), over entries of its own. It
    failed before the fix: no finding, the forged log OK under the pinned key."""
    from tests.core.test_checkpoint import _identity_as_checkpoint

    entries, leaves = ledger(4)
    reg = Registry()
    note = _identity_as_checkpoint(reg.key, reg.pub, 4, root_of(leaves))
    origin = note.split("\n", 1)[0]
    record = {"tree_size": 4, "root_hash": root_of(leaves).hex(), "note": note,
              "public_key": reg.keys[0]}  # fmt: skip
    a = Auditor([record], reg.keys, origin, pinned=True)
    for e in entries:
        a.entry(e)
    report = a.finish()
    assert kinds(report) == ["signature"], report.findings
    assert "not a checkpoint" in report.findings[0].message
