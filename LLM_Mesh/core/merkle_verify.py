"""Checking RFC 9162 proofs: inclusion (§2.1.3.2) and consistency (§2.1.4.2).

The verifier's own code: it shares only the hashing rules (``core/merkle.py``) with
the ledger's writer, never the writer's tree or proof code. Both functions follow
the RFC's algorithms step by step and return ``False`` (never raise) on any proof
that does not check out, including malformed sizes and wrong proof lengths.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from LLM_Mesh.core.merkle import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["verify_consistency", "verify_inclusion"]


def _well_formed(hashes: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: is the leaf hash ``leaf`` at ``leaf_index`` in the tree ``root``?"""
    if not _well_formed([leaf, root, *proof]):
        return False
    if leaf_index < 0 or leaf_index >= tree_size:  # step 1
        return False
    fn, sn = leaf_index, tree_size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4.1
            return False
        if fn & 1 or fn == sn:  # 4.2
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:  # 4.3
            r = node_hash(r, p)
        fn >>= 1  # 4.4
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)  # step 5


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``second_root`` (size ``second``) an append-only
    extension of ``first_root`` (size ``first``)?

    As the RFC's checks do, ``first == second`` needs an empty proof and equal roots;
    ``first == 0`` (the empty tree) is consistent with every tree, by an empty proof,
    when ``first_root`` is the empty tree's (found 2026-12-05, ``attack32``: any root
    passed, so a signed size-0 checkpoint of another root was "consistent").
    """
    if not _well_formed([first_root, second_root, *proof]):
        return False
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof and hmac.compare_digest(first_root, EMPTY_ROOT)
    if not proof:  # step 1
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # step 2: a power of two: prepend first_hash
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6.1
            return False
        if fn & 1 or fn == sn:  # 6.2
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:  # 6.3
            sr = node_hash(sr, c)
        fn >>= 1  # 6.4
        sn >>= 1
    return (  # step 7
        sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
    )
