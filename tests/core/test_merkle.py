"""RFC 9162 hashing and proof checks, against Certificate Transparency's test vectors.

The leaves and roots are the test vectors of the certificate-transparency
reference implementations (``merkle_tree_test``: eight leaves, the root of every
prefix, audit paths and consistency proofs), so the hashing and the checks are the
RFC's, not merely self-consistent.
"""

from __future__ import annotations

import hashlib

import pytest

from LLM_Mesh.core.merkle import (
    EMPTY_ROOT,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    root_of,
)
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion

LEAVES = [
    b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70)),
]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
HASHES = [leaf_hash(x) for x in LEAVES]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (leaf index, tree size, audit path) from the CT test vectors
INCLUSION = [
    (0, 1, []),
    (0, 8, _h(
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    )),
    (5, 8, _h(
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    )),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, _h(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    )),
]  # fmt: skip
# (first, second, proof) from the CT test vectors
CONSISTENCY = [
    (1, 1, []),
    (1, 8, _h(
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    )),
    (6, 8, _h(
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    )),
    (2, 5, _h(
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    )),
]  # fmt: skip


def test_hashing_rules() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert [largest_power_of_two_below(n) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 4, 4, 8]
    with pytest.raises(ValueError):
        largest_power_of_two_below(1)


@pytest.mark.parametrize("n", range(1, 9))
def test_roots_match_ct_vectors(n: int) -> None:
    assert root_of(HASHES[:n]).hex() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, path: list[bytes]) -> None:
    root = bytes.fromhex(ROOTS[size - 1])
    assert verify_inclusion(index, size, HASHES[index], path, root)
    other = HASHES[(index + 1) % 8]
    assert not verify_inclusion(index, size, other, path, root)
    assert not verify_inclusion(size, size, HASHES[index], path, root)
    if path:
        assert not verify_inclusion(index, size, HASHES[index], path[:-1], root)
        assert not verify_inclusion(index, size, HASHES[index], [*path, path[0]], root)
        bad = [bytes(32), *path[1:]]
        assert not verify_inclusion(index, size, HASHES[index], bad, root)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_vectors(first: int, second: int, proof: list[bytes]) -> None:
    r1, r2 = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    assert verify_consistency(first, second, r1, r2, proof)
    if first != second:
        assert not verify_consistency(first, second, r2, r2, proof)
        assert not verify_consistency(first, second, r1, r1, proof)
        assert not verify_consistency(first, second, r1, r2, proof[:-1])
        assert not verify_consistency(first, second, r1, r2, [])
        assert not verify_consistency(second, first, r2, r1, proof)


def test_consistency_edge_cases() -> None:
    r = bytes.fromhex(ROOTS[3])
    assert verify_consistency(0, 4, EMPTY_ROOT, r, [])
    assert not verify_consistency(0, 4, EMPTY_ROOT, r, [r])
    # found 2026-12-05 (attack32): the empty tree has one root; any other is no tree of size 0
    assert not verify_consistency(0, 4, r, r, [])
    assert not verify_consistency(4, 4, r, r, [r])
    assert not verify_consistency(4, 4, r, bytes(32), [])
    assert not verify_consistency(-1, 4, r, r, [])
    assert not verify_consistency(1, 2, b"short", r, [r])
