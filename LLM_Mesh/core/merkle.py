"""The Merkle tree hashing rules of Certificate Transparency (RFC 9162 §2.1.1).

These are the only rules the ledger's writer (``registry/ledger_tree.py``) and its
verifier (``core/merkle_verify.py``, ``core/ledger_audit.py``) share:

- a leaf's hash is ``SHA-256(0x00 || leaf)``;
- an interior node's hash is ``SHA-256(0x01 || left || right)``;
- the Merkle Tree Hash (MTH) of no leaves is ``SHA-256()``; of one leaf, its leaf
  hash; of ``n > 1`` leaves, the node hash of the MTH of the first ``k`` leaves and
  the MTH of the rest, where ``k`` is the largest power of two smaller than ``n``.

:func:`root_of` computes the MTH of a list of leaf hashes (a reference for tests and
small trees; the writer and the verifier each keep their own incremental state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "largest_power_of_two_below",
    "leaf_hash",
    "node_hash",
    "root_of",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

#: The MTH of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two ``k`` with ``k < n`` (``n >= 2``)."""
    if n < 2:
        raise ValueError(f"no power of two splits {n} leaves")
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The MTH of the given leaf hashes, by the RFC's recursive definition."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))
