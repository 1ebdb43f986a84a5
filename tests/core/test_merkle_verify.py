"""RFC 9162 proof checks (core/merkle_verify.py) over every tree size up to 24, against the
RFC's own definitions of the proofs (``tests/core/ledger_audit_fixtures.py``'s references).
The CT vectors of ``tests/core/test_merkle.py`` never reached some steps: each test here
killed a mutant they let live (2026-12-05)."""

from __future__ import annotations

from LLM_Mesh.core.merkle import leaf_hash, node_hash, root_of
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from tests.core.ledger_audit_fixtures import inclusion_path, subproof

LEAVES = [leaf_hash(b"entry %d" % i) for i in range(24)]


def _flipped(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_every_consistency_proof_up_to_24_verifies_and_no_altered_one() -> None:
    """Including the sizes whose check shifts past a right edge at step 6.2 (5 → 6,
    9 → 10 ...), which the CT vectors have none of."""
    for second in range(2, 25):
        r2 = root_of(LEAVES[:second])
        for first in range(1, second):
            r1 = root_of(LEAVES[:first])
            proof = subproof(first, LEAVES[:second], True)
            assert verify_consistency(first, second, r1, r2, proof), (first, second)
            for i in range(len(proof)):
                bad = [*proof[:i], _flipped(proof[i]), *proof[i + 1 :]]
                assert not verify_consistency(first, second, r1, r2, bad), (first, second, i)
            assert not verify_consistency(first, second, r1, _flipped(r2), proof)
            assert not verify_consistency(first, second, _flipped(r1), r2, proof)


def test_every_inclusion_proof_up_to_24_verifies_and_no_altered_one() -> None:
    for size in range(1, 25):
        root = root_of(LEAVES[:size])
        for index in range(size):
            path = inclusion_path(index, LEAVES[:size])
            assert verify_inclusion(index, size, LEAVES[index], path, root), (index, size)
            wrong = LEAVES[(index + 1) % 24]
            assert not verify_inclusion(index, size, wrong, path, root), (index, size)


def test_a_smaller_second_tree_is_refused_whatever_its_proof() -> None:
    """A log rolled back to 2 entries after one of 3 was seen: it may make up the smaller
    tree's root and a proof the step-6 arithmetic accepts (the first root, then ``c``,
    hashed together: the "root" it claims). Refused because the size went down."""
    r3 = root_of(LEAVES[:3])
    c = LEAVES[5]
    assert not verify_consistency(3, 2, r3, node_hash(r3, c), [r3, c])
    assert not verify_consistency(3, 3, r3, node_hash(r3, c), [r3, c])


def test_hashes_of_the_wrong_length_are_refused_even_when_equal() -> None:
    """A leaf or root that is not 32 bytes is no hash, even where the arithmetic alone
    would take it (a one-leaf tree whose root is its leaf; a tree equal to itself)."""
    short = b"x" * 31
    assert verify_inclusion(0, 1, LEAVES[0], [], LEAVES[0])
    assert not verify_inclusion(0, 1, short, [], short)
    assert not verify_inclusion(0, 1, LEAVES[0] + b"x", [], LEAVES[0] + b"x")
    assert verify_consistency(2, 2, LEAVES[0], LEAVES[0], [])
    assert not verify_consistency(2, 2, short, short, [])
    r2 = root_of(LEAVES[:2])
    assert not verify_inclusion(0, 2, LEAVES[0], [LEAVES[1] + b"x"], r2)


def test_a_proof_with_a_hash_too_many_is_refused() -> None:
    """Step 6.1 (and 4.1): a hash left over once the second tree's path is walked fails the
    proof, whatever the roots (mut33, 2026-12-06: returning success there let any two roots
    pass with one extra hash)."""
    extra = leaf_hash(b"extra")
    for second in range(2, 17):
        r2 = root_of(LEAVES[:second])
        for first in range(1, second):
            r1 = root_of(LEAVES[:first])
            proof = [*subproof(first, LEAVES[:second], True), extra]
            assert not verify_consistency(first, second, r1, r2, proof), (first, second)
            assert not verify_consistency(first, second, r1, _flipped(r2), proof)
        for index in range(second):
            path = [*inclusion_path(index, LEAVES[:second]), extra]
            assert not verify_inclusion(index, second, LEAVES[index], path, r2), (index, second)
