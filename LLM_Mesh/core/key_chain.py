"""A chain of registry-key rotation statements: each old ``registry.key`` vouches for the
next, so a node several rotations behind can follow from the key it pinned.

A link is one rotation statement (``core/key_rotation.py``: ``previous_public_key``'s
signature naming ``public_key``). The registry keeps the links it announced in
``$LLM_MESH_HOME/registry.key.rotations`` (``registry/key_history.py``) and sends them in
every registration answer as ``key_rotations``, oldest first, the last naming its current
key; at most :data:`MAX_CHAIN_LINKS` of them. A node that pinned a key the chain names as
a signer checks every link from there on (:func:`follow_chain`) and pins the answer's key
only when each is its signer's signature naming the next signer and the last names the
answer's key. Anything else is refused with a reason: a chain over the bound, a fork (one
key signing two next keys), a loop (a key named twice), a gap, a link the key before did
not sign, a chain that does not end at the answer's key or never reaches the pinned one.

A lost ``registry.key`` signs nothing: no chain reaches the key made after it, and its
nodes need their operators (``llm-mesh node keys forget-gateway``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import decode_public_key
from LLM_Mesh.core.key_rotation import vouches_for
from LLM_Mesh.errors import MeshError

__all__ = [
    "MAX_CHAIN_LINKS",
    "ChainRefused",
    "chain_to",
    "follow_chain",
    "link_of",
    "rotation_path",
]

# the links a registry keeps and sends, and a node follows: a node more rotations behind
# than this needs its operator (``llm-mesh node keys forget-gateway``)
MAX_CHAIN_LINKS = 16
_FIELDS = ("public_key", "previous_public_key", "signature")
_MAX_FIELD = 200


class ChainRefused(ValueError):
    """A rotation chain the node does not follow; the message says why."""


def link_of(value: object) -> dict[str, str] | None:
    """``value`` as a link (its three string fields), or None when it is not one."""
    if not isinstance(value, Mapping):
        return None
    link = {name: value.get(name) for name in _FIELDS}
    if not all(isinstance(v, str) and 0 < len(v) <= _MAX_FIELD for v in link.values()):
        return None
    return {k: str(v) for k, v in link.items()}


def gateway_name(key: str) -> str:
    """A key's registry id (``registry-…``), for messages; ``(unusable key)`` when none."""
    try:
        return registry_id_for(decode_public_key(key).public_bytes_raw())
    except (MeshError, ValueError):
        return "(unusable key)"


def _signed(link: Mapping[str, str]) -> bool:
    return vouches_for(link, link["previous_public_key"], link["public_key"])


def chain_to(links: Sequence[Mapping[str, str]], current: str) -> list[dict[str, str]]:
    """The chain a registry whose key is ``current`` sends: the longest run of ``links``
    (oldest first) that ends naming ``current``, each link signed by its signer and
    naming the next link's signer, no key twice, at most :data:`MAX_CHAIN_LINKS` (the
    newest kept). Empty when the last link does not name ``current`` (a lost key)."""
    chain: list[dict[str, str]] = []
    want, seen = current, {current}
    for raw in reversed(links):
        link = link_of(raw)
        if len(chain) == MAX_CHAIN_LINKS or link is None or link["public_key"] != want:
            break
        signer = link["previous_public_key"]
        if signer in seen or not _signed(link):
            break
        chain.append(link)
        seen.add(signer)
        want = signer
    chain.reverse()
    return chain


def follow_chain(chain: object, pinned: str, new_key: str) -> list[str]:
    """The keys from ``pinned`` to ``new_key`` that ``chain`` (an answer's
    ``key_rotations``, oldest first) vouches for, each signed by the one before;
    :class:`ChainRefused` with the reason otherwise."""
    if not isinstance(chain, list) or not chain:
        raise ChainRefused("the answer carries no rotation chain")
    if len(chain) > MAX_CHAIN_LINKS:
        raise ChainRefused(
            f"the rotation chain has {len(chain)} links, over the bound of {MAX_CHAIN_LINKS} "
            "(a node further behind needs its operator)"
        )
    links: list[dict[str, str]] = []
    for i, raw in enumerate(chain):
        link = link_of(raw)
        if link is None:
            raise ChainRefused(f"link {i} of the rotation chain is malformed")
        links.append(link)
    signers: dict[str, int] = {}
    named: dict[str, int] = {}
    for i, link in enumerate(links):
        signer, key = link["previous_public_key"], link["public_key"]
        if signer in signers:
            raise ChainRefused(
                f"the rotation chain forks: gateway {gateway_name(signer)} signs two next keys"
            )
        if key in named or key == signer or key in signers:
            raise ChainRefused(
                f"the rotation chain loops: gateway {gateway_name(key)} is named twice"
            )
        if i > 0 and signer != links[i - 1]["public_key"]:
            raise ChainRefused(
                f"the rotation chain is broken at link {i}: gateway {gateway_name(signer)} "
                "signs it, not the key the link before named"
            )
        signers[signer], named[key] = i, i
    if links[-1]["public_key"] != new_key:
        raise ChainRefused(
            f"the rotation chain does not end at the answer's key, gateway {gateway_name(new_key)}"
        )
    start = signers.get(pinned)
    if start is None:
        raise ChainRefused(
            f"the rotation chain (its last {len(chain)} links) does not reach back to the "
            f"pinned gateway {gateway_name(pinned)}: the key was lost, or this node is "
            f"more rotations behind than the registry keeps, or this is another registry"
        )
    path = [pinned]
    for i, link in enumerate(links[start:], start):
        if not _signed(link):
            raise ChainRefused(
                f"link {i} of the rotation chain (gateway {gateway_name(link['previous_public_key'])}"
                f" to gateway {gateway_name(link['public_key'])}) is not that key's signature "
                "(forged)"
            )
        path.append(link["public_key"])
    return path


def rotation_path(answer: Mapping[str, Any], pinned: str, key: str) -> tuple[list[str], str]:
    """The keys from ``pinned`` to ``key`` that ``answer``'s signed rotations vouch for (its
    ``key_rotations`` chain, or the one ``key_rotation`` of an older registry), or no keys
    and why not. One rule for every answer that names them: a registration's
    (``node/gateway_guard.py``: the pin moves) and a 403 ``revoked``'s
    (``core/revocation_proof.py``: signed by a key the pinned one led to)."""
    if vouches_for(answer.get("key_rotation"), pinned, key):
        return [pinned, key], ""
    chain = answer.get("key_rotations")
    if chain is None:
        if answer.get("key_rotation") is None:
            return [], "the answer carries no rotation statement (a lost registry.key?)"
        return [], "its rotation statement is not the pinned key's signature naming it"
    try:
        return follow_chain(chain, pinned, key), ""
    except ChainRefused as exc:
        return [], str(exc)
