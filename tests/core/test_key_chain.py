"""The chain of registry-key rotation statements (``core/key_chain.py``): what a node
follows, what it refuses and why, and what a registry keeps."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.key_chain import (
    MAX_CHAIN_LINKS,
    ChainRefused,
    chain_to,
    follow_chain,
    rotation_path,
)
from LLM_Mesh.core.key_rotation import rotation_statement


def _keys(n: int) -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey.generate() for _ in range(n)]


def _pub(key: Ed25519PrivateKey) -> str:
    return encode_public_key(public_key_of(key))


def _chain(keys: list[Ed25519PrivateKey]) -> list[dict[str, Any]]:
    return [rotation_statement(a, b) for a, b in itertools.pairwise(keys)]


@pytest.mark.parametrize("behind", [1, 2, 3, MAX_CHAIN_LINKS])
def test_a_node_follows_from_any_key_the_chain_names(behind: int) -> None:
    keys = _keys(MAX_CHAIN_LINKS + 1)
    chain = _chain(keys)
    start = len(keys) - 1 - behind
    path = follow_chain(chain, _pub(keys[start]), _pub(keys[-1]))
    assert path == [_pub(k) for k in keys[start:]]


def _refusal(chain: Any, pinned: str, new: str) -> str:
    with pytest.raises(ChainRefused) as refused:
        follow_chain(chain, pinned, new)
    return str(refused.value)


def test_a_forged_link_is_refused() -> None:
    keys = _keys(4)
    chain = _chain(keys)
    other = rotation_statement(Ed25519PrivateKey.generate(), keys[2])
    chain[1] = {**other, "previous_public_key": _pub(keys[1])}
    assert "link 1 " in _refusal(chain, _pub(keys[0]), _pub(keys[3]))
    assert "(forged)" in _refusal(chain, _pub(keys[0]), _pub(keys[3]))
    # a node pinned after the forged link does not need it
    assert follow_chain(chain, _pub(keys[2]), _pub(keys[3])) == [_pub(keys[2]), _pub(keys[3])]


def test_a_chain_over_the_bound_is_refused_before_any_signature_is_checked() -> None:
    keys = _keys(MAX_CHAIN_LINKS + 2)
    chain = _chain(keys)
    assert f"{MAX_CHAIN_LINKS + 1} links, over the bound of {MAX_CHAIN_LINKS}" in _refusal(
        chain, _pub(keys[-2]), _pub(keys[-1])
    )


def test_loops_forks_and_gaps_are_refused() -> None:
    a, b, c, d = _keys(4)
    loop = _chain([a, b, a, c])
    assert "loops" in _refusal(loop, _pub(a), _pub(c))
    assert "loops" in _refusal([rotation_statement(a, a)], _pub(a), _pub(a))
    fork = [rotation_statement(a, b), rotation_statement(b, c), rotation_statement(b, d)]
    assert "forks" in _refusal(fork, _pub(a), _pub(d))
    gap = [rotation_statement(a, b), rotation_statement(c, d)]
    assert "broken at link 1" in _refusal(gap, _pub(a), _pub(d))


def test_a_chain_must_end_at_the_answer_key_and_reach_the_pin() -> None:
    a, b, c, other = _keys(4)
    chain = _chain([a, b, c])
    assert "does not end at the answer's key" in _refusal(chain, _pub(a), _pub(other))
    assert "does not reach back to the pinned gateway" in _refusal(chain, _pub(other), _pub(c))


@pytest.mark.parametrize("bad", [None, {}, "x", 5, [], [1, "x"], [{}], [{"public_key": 3}], [[]]])
def test_malformed_chains_are_refused(bad: Any) -> None:
    a, b = _keys(2)
    with pytest.raises(ChainRefused):
        follow_chain(bad, _pub(a), _pub(b))


def test_chain_to_keeps_the_signed_run_ending_at_the_current_key() -> None:
    keys = _keys(MAX_CHAIN_LINKS + 3)
    chain = _chain(keys)
    kept = chain_to(chain, _pub(keys[-1]))
    assert kept == chain[-MAX_CHAIN_LINKS:]  # the newest, at most the bound
    assert chain_to(chain, _pub(Ed25519PrivateKey.generate())) == []  # a lost key
    assert chain_to(chain[:3], _pub(keys[3])) == chain[:3]
    forged = {**chain[1], "signature": chain[2]["signature"]}
    assert chain_to([chain[0], forged, chain[2]], _pub(keys[3])) == [chain[2]]
    loop = _chain([keys[0], keys[1], keys[0], keys[2]])
    assert chain_to(loop, _pub(keys[2])) == loop[-2:]


def test_a_link_is_three_strings_of_1_to_200_characters() -> None:
    from LLM_Mesh.core.key_chain import link_of

    one = {"public_key": "k", "previous_public_key": "p", "signature": "s"}
    assert link_of(one) == one
    longest = {name: "x" * 200 for name in one}
    assert link_of({**longest, "extra": 1}) == longest  # other fields dropped
    for name in one:
        assert link_of({**one, name: "x" * 201}) is None
        assert link_of({**one, name: ""}) is None
        assert link_of({**one, name: 7}) is None


def test_a_gateway_is_named_by_its_registry_id_in_refusals() -> None:
    from LLM_Mesh.core.gateway_auth import registry_id_for
    from LLM_Mesh.core.key_chain import gateway_name

    key = Ed25519PrivateKey.generate()
    assert gateway_name(_pub(key)) == registry_id_for(public_key_of(key))
    assert gateway_name("not a key") == "(unusable key)"


def _name(key: Ed25519PrivateKey) -> str:
    from LLM_Mesh.core.gateway_auth import registry_id_for

    return registry_id_for(public_key_of(key))


def test_each_refusal_word_for_word() -> None:
    a, b, c, d = _keys(4)
    assert _refusal([], _pub(a), _pub(b)) == "the answer carries no rotation chain"
    assert _refusal(None, _pub(a), _pub(b)) == "the answer carries no rotation chain"
    long = _chain(_keys(MAX_CHAIN_LINKS + 2))
    assert _refusal(long, _pub(a), _pub(b)) == (
        f"the rotation chain has {MAX_CHAIN_LINKS + 1} links, over the bound of "
        f"{MAX_CHAIN_LINKS} (a node further behind needs its operator)"
    )
    assert _refusal([rotation_statement(a, b), {}], _pub(a), _pub(b)) == (
        "link 1 of the rotation chain is malformed"
    )
    fork = [rotation_statement(a, b), rotation_statement(b, c), rotation_statement(b, d)]
    assert _refusal(fork, _pub(a), _pub(d)) == (
        f"the rotation chain forks: gateway {_name(b)} signs two next keys"
    )
    assert _refusal(_chain([a, b, a, c]), _pub(a), _pub(c)) == (
        f"the rotation chain loops: gateway {_name(a)} is named twice"
    )
    gap = [rotation_statement(a, b), rotation_statement(c, d)]
    assert _refusal(gap, _pub(a), _pub(d)) == (
        f"the rotation chain is broken at link 1: gateway {_name(c)} signs it, not the key "
        "the link before named"
    )
    assert _refusal(_chain([a, b]), _pub(a), _pub(c)) == (
        f"the rotation chain does not end at the answer's key, gateway {_name(c)}"
    )
    assert _refusal(_chain([a, b, c]), _pub(d), _pub(c)) == (
        f"the rotation chain (its last 2 links) does not reach back to the pinned gateway "
        f"{_name(d)}: the key was lost, or this node is more rotations behind than the "
        "registry keeps, or this is another registry"
    )


def test_a_forged_link_is_named_by_its_place_in_the_chain_wherever_the_node_starts() -> None:
    keys = _keys(5)
    chain = _chain(keys)
    chain[2] = {**chain[2], "signature": chain[3]["signature"]}
    expected = (
        f"link 2 of the rotation chain (gateway {_name(keys[2])} to gateway "
        f"{_name(keys[3])}) is not that key's signature (forged)"
    )
    assert _refusal(chain, _pub(keys[0]), _pub(keys[4])) == expected
    assert _refusal(chain, _pub(keys[1]), _pub(keys[4])) == expected
    assert _refusal(chain, _pub(keys[2]), _pub(keys[4])) == expected
    assert follow_chain(chain, _pub(keys[3]), _pub(keys[4])) == [_pub(keys[3]), _pub(keys[4])]


def test_rotation_path_reads_one_statement_or_the_chain_and_says_why_not() -> None:
    """The one rule a registration and a 403 ``revoked`` follow a rotation by (mut34: tested
    only through ``revocation_proof``): each answer, and each refusal word for word."""
    keys = _keys(3)
    p0, p1, p2 = (_pub(k) for k in keys)
    one = rotation_statement(keys[0], keys[1])
    assert rotation_path({"key_rotation": one}, p0, p1) == ([p0, p1], "")
    chain = _chain(keys)
    assert rotation_path({"key_rotations": chain}, p0, p2) == ([p0, p1, p2], "")
    # an older registry's statement that does not vouch, beside a chain that does
    assert rotation_path({"key_rotation": one, "key_rotations": chain}, p0, p2) == (
        [p0, p1, p2], "",
    )  # fmt: skip
    assert rotation_path({}, p0, p1) == (
        [], "the answer carries no rotation statement (a lost registry.key?)",
    )  # fmt: skip
    forged = rotation_statement(Ed25519PrivateKey.generate(), keys[1])
    assert rotation_path({"key_rotation": forged}, p0, p1) == (
        [], "its rotation statement is not the pinned key's signature naming it",
    )  # fmt: skip
    bad = [chain[0], {**chain[1], "signature": forged["signature"]}]
    assert rotation_path({"key_rotations": bad}, p0, p2) == ([], _refusal(bad, p0, p2))
    assert rotation_path({"key_rotations": bad}, p0, p2)[1]  # a reason, not ""
