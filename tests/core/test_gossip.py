"""Comparing signed checkpoints between verifiers (``core/gossip.py``), purely: two
histories signed with the registry's one key, and the decision on each pair."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, open_checkpoint, sign_checkpoint
from LLM_Mesh.core.gossip import (
    EXPORT_FORMAT,
    MAX_NOTE,
    export,
    judge,
    note_from,
    open_foreign,
    proof_sizes,
)
from LLM_Mesh.core.merkle import leaf_hash, root_of
from LLM_Mesh.registry.ledger_tree import consistency_ranges

ORIGIN = "test.local/ledger"


class _Registry:
    """Signs checkpoints of whatever history it is asked to, with one key (as a registry
    that shows each verifier another history does), and proves consistency in its tree."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.pub = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.b64 = base64.b64encode(self.pub).decode()

    def sign(self, leaves: list[bytes], size: int) -> Checkpoint:
        return sign_checkpoint(self.key, self.pub, ORIGIN, size, root_of(leaves[:size]), size)


def _history(tag: str, n: int) -> list[bytes]:
    return [leaf_hash(f"{tag}-{i}".encode()) for i in range(n)]


def _proof(leaves: list[bytes], first: int, second: int) -> list[bytes]:
    """RFC 9162 PROOF(first, D[second]) of ``leaves``, built as the writer builds it."""
    return [root_of(leaves[lo:hi]) for lo, hi in consistency_ranges(first, second)]


HONEST = _history("a", 13)
# the same first 4 entries, then another history (one entry changed), all re-signed
OTHER = [*HONEST[:4], leaf_hash(b"forged"), *HONEST[5:]]


def test_the_same_checkpoint_is_consistent_and_needs_no_proof() -> None:
    reg = _Registry()
    cp = reg.sign(HONEST, 7)
    assert proof_sizes(cp, cp) is None
    assert judge(cp, reg.sign(HONEST, 7), None).kind == "consistent"
    empty = reg.sign(HONEST, 0)  # the empty tree: a prefix of every tree, no proof
    assert proof_sizes(cp, empty) is None and judge(cp, empty, None).ok
    lie = sign_checkpoint(reg.key, reg.pub, ORIGIN, 0, root_of(HONEST[:1]), 0)
    assert judge(cp, lie, None).kind == "split view"


@pytest.mark.parametrize(("ours", "theirs"), [(5, 13), (13, 5), (1, 2), (8, 12), (4, 8)])
def test_checkpoints_of_one_history_at_other_sizes_are_consistent_by_a_proof(
    ours: int, theirs: int
) -> None:
    reg = _Registry()
    a, b = reg.sign(HONEST, ours), reg.sign(HONEST, theirs)
    sizes = proof_sizes(a, b)
    assert sizes == (min(ours, theirs), max(ours, theirs))
    v = judge(a, b, _proof(HONEST, *sizes))
    assert v.ok, v.message
    assert ("extends" if theirs > ours else "is a prefix of") in v.message


def test_two_histories_signed_with_one_key_at_one_size_are_a_split_view() -> None:
    reg = _Registry()
    mine = reg.sign(HONEST, 9)
    # the foreign verifier's checkpoint, as it exported it, checks out with the same key
    theirs = open_foreign(json.dumps(export(reg.sign(OTHER, 9), reg.b64, None)), ORIGIN, [reg.b64])
    v = judge(mine, theirs, None)
    assert v.kind == "split view" and not v.ok
    assert "two roots for size 9" in v.message and theirs.root_hash.hex() in v.message


@pytest.mark.parametrize(("ours", "theirs"), [(6, 13), (13, 6), (5, 9)])
def test_two_histories_at_other_sizes_are_a_split_view_whatever_proof_the_registry_gives(
    ours: int, theirs: int
) -> None:
    reg = _Registry()
    mine, foreign = reg.sign(HONEST, ours), reg.sign(OTHER, theirs)
    first, second = proof_sizes(mine, foreign)  # type: ignore[misc]
    # the registry can answer from either history (or anything else): nothing connects them
    for leaves in (HONEST, OTHER):
        v = judge(mine, foreign, _proof(leaves, first, second))
        assert v.kind == "split view", v.message
        assert f"size {first} and {second} are not one history" in v.message
    assert judge(mine, foreign, []).kind == "split view"
    assert judge(mine, foreign, [bytes(32)] * 4).kind == "split view"


def test_a_prefix_both_histories_share_is_consistent_with_either() -> None:
    """Entries 0-3 are the same in both: a checkpoint at 4 is one history with either."""
    reg = _Registry()
    shared = reg.sign(OTHER, 4)
    assert judge(reg.sign(HONEST, 11), shared, _proof(HONEST, 4, 11)).ok


def test_no_proof_from_the_registry_leaves_it_unproven_not_consistent() -> None:
    reg = _Registry()
    v = judge(reg.sign(HONEST, 5), reg.sign(HONEST, 9), None)
    assert v.kind == "unproven" and not v.ok
    assert "no consistency proof from size 5 to 9" in v.message


def test_a_foreign_checkpoint_must_be_signed_by_the_key_this_verifier_trusts() -> None:
    reg, other = _Registry(), _Registry()
    note = other.sign(OTHER, 9).note
    with pytest.raises(BadCheckpoint, match="no signature by the registry's key"):
        open_foreign(note, ORIGIN, [reg.b64])
    # the key the file names is not trusted: only the verifier's own list counts
    exported = json.dumps(export(other.sign(OTHER, 9), other.b64, "http://registry"))
    with pytest.raises(BadCheckpoint, match="no signature by the registry's key"):
        open_foreign(exported, ORIGIN, [reg.b64])
    assert open_foreign(note, ORIGIN, [reg.b64, other.b64]).tree_size == 9  # a key rotation


def test_a_forged_checkpoint_body_does_not_verify() -> None:
    reg = _Registry()
    good = reg.sign(HONEST, 9)
    forged = good.note.replace(
        base64.b64encode(good.root_hash).decode(), base64.b64encode(root_of(OTHER[:9])).decode()
    )
    assert forged != good.note
    with pytest.raises(BadCheckpoint, match="does not verify"):
        open_foreign(forged, ORIGIN, [base64.b64encode(bytes(32)).decode(), reg.b64])
    with pytest.raises(BadCheckpoint, match="not a checkpoint of"):
        open_foreign(good.note, "another.example/ledger", [reg.b64])


def test_the_exchange_form_carries_the_note_and_what_it_says() -> None:
    reg = _Registry()
    cp = reg.sign(HONEST, 9)
    data = export(cp, reg.b64, "https://registry.example")
    assert data["format"] == EXPORT_FORMAT and data["tree_size"] == 9
    assert (
        data["root_hash"] == cp.root_hash.hex() and data["registry"] == "https://registry.example"
    )
    assert open_checkpoint(note_from(json.dumps(data)), ORIGIN, reg.pub) == cp
    assert note_from(cp.note) == cp.note  # the bare signed note is accepted as is
    for bad in ('{"note": 5}', "[1]", '{"tree_size": 9', "", "hello\n\n"):
        with pytest.raises(BadCheckpoint):
            open_foreign(bad, ORIGIN, [reg.b64])
    with pytest.raises(BadCheckpoint, match="longer than"):
        note_from("x" * 70_000)


def test_the_exchange_form_is_exactly_these_fields() -> None:
    reg = _Registry()
    cp = reg.sign(HONEST, 9)
    assert export(cp, reg.b64, None) == {
        "format": EXPORT_FORMAT,
        "registry": None,
        "origin": ORIGIN,
        "tree_size": 9,
        "root_hash": cp.root_hash.hex(),
        "time_us": cp.time_us,
        "public_key": reg.b64,
        "note": cp.note,
    }


def test_a_note_of_exactly_max_note_characters_is_read_and_one_more_is_not() -> None:
    text = "x" * MAX_NOTE
    assert note_from(text) == text
    with pytest.raises(
        BadCheckpoint, match=f"^longer than {MAX_NOTE} characters: not a checkpoint$"
    ):
        note_from(text + "x")


def test_an_exported_checkpoint_with_white_space_before_it_is_still_json() -> None:
    reg = _Registry()
    cp = reg.sign(HONEST, 9)
    assert note_from("\n  " + json.dumps(export(cp, reg.b64, None))) == cp.note


def test_what_is_wrong_with_a_foreign_checkpoint_is_said_in_words() -> None:
    reg = _Registry()
    with pytest.raises(BadCheckpoint, match=r"^not JSON: "):
        note_from('{"note": ')
    with pytest.raises(BadCheckpoint, match=r"^a JSON checkpoint without a 'note' string$"):
        note_from('{"note": 5}')
    note = reg.sign(HONEST, 9).note
    with pytest.raises(BadCheckpoint, match=r"^no trusted key to check it with$"):
        open_foreign(note, ORIGIN, [])
    with pytest.raises(BadCheckpoint, match=r"^a trusted key is not usable: "):
        open_foreign(note, ORIGIN, [base64.b64encode(b"short").decode()])


def test_checkpoints_of_two_ledgers_are_not_compared() -> None:
    reg = _Registry()
    ours = reg.sign(HONEST, 3)
    theirs = sign_checkpoint(reg.key, reg.pub, "other.example/ledger", 3, root_of(HONEST[:3]), 3)
    with pytest.raises(ValueError, match=r"^checkpoints of two ledgers are not compared$"):
        judge(ours, theirs, None)


def test_the_verdicts_messages_word_for_word() -> None:
    reg = _Registry()
    small, large = reg.sign(HONEST, 5), reg.sign(HONEST, 9)

    def short(cp: Checkpoint) -> str:
        return f"size {cp.tree_size} (root {cp.root_hash.hex()[:16]}…)"

    assert judge(large, reg.sign(HONEST, 9), None).message == (
        f"{short(large)}: the same checkpoint as this view's"
    )
    empty = reg.sign(HONEST, 0)
    assert judge(large, empty, None).message == (
        f"{short(empty)}: the empty tree is a prefix of every tree"
    )
    lie = sign_checkpoint(reg.key, reg.pub, ORIGIN, 0, root_of(HONEST[:1]), 0)
    assert judge(large, lie, None).message == (
        "the registry signed a root for the empty tree that is not its root"
    )
    proof = _proof(HONEST, 5, 9)
    assert judge(small, large, proof).message == (
        f"{short(large)} extends this view's {short(small)} (consistency proof)"
    )
    assert judge(large, small, proof).message == (
        f"{short(small)} is a prefix of this view's {short(large)} (consistency proof)"
    )
    foreign = reg.sign(OTHER, 9)
    assert judge(small, foreign, _proof(HONEST, 5, 9)).message == (
        "the registry's checkpoints at size 5 and 9 are not one history: its "
        "consistency proof between them fails"
    )


def test_a_json_checkpoint_nested_too_deep_is_refused_in_words() -> None:
    """Within the length bound, a ``{"a":[[[...`` is read by the parser until it gives up:
    a checkpoint refused in words, not a ``RecursionError`` (mut34: only its kind tested)."""
    text = '{"a":' + "[" * 60_000
    assert len(text) <= MAX_NOTE
    with pytest.raises(BadCheckpoint) as exc:
        note_from(text)
    assert str(exc.value) == "JSON nested too deep to read: not a checkpoint"
