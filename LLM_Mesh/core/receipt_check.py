"""The gateway's check of each node's part of a request, before it countersigns.

Pure (no I/O). The send stage records what it relayed of each node (:class:`Observed`);
the account stage turns each into a :class:`~LLM_Mesh.core.receipt.Part` with
:func:`check_part`: the node's receipt must be its key's signature of **the gateway's own
values** (its registry id, the request's id and model, the counts and the output hash it
relayed), so one Ed25519 verify checks every field; only when it fails are the fields
compared, to name the reason. The key must derive the node id the gateway routed to (a
node's id is its key's hash, checked at registration), so it is the registered key: no
store look-up (:class:`NodeKeys` caches decoded keys). Ed25519 by libsodium under the rule
every receipt verifier shares (:mod:`~LLM_Mesh.core.ed25519`): the offline ``llm-mesh
receipt verify`` accepts exactly the signatures this accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.ed25519 import PublicKey
from LLM_Mesh.core.identity import node_id_for
from LLM_Mesh.core.part_match import NOT_SAID
from LLM_Mesh.core.receipt import Part, PartStatus, node_receipt_bytes, unb64url

__all__ = ["NodeKeys", "Observed", "PromptClaim", "check_part"]


@dataclass(frozen=True, slots=True)
class PromptClaim:
    """A node's signed prompt count as its stream opened (``core/prompt_count.checked_claim``:
    verified): the count, its key and its signature (base64url), as a ``cut`` part keeps
    them (since 2026-12-06, money36)."""

    prompt_tokens: int
    node_key: str
    signature: str


@dataclass(slots=True)
class Observed:
    """What the gateway relayed of one node (the send stage writes it): the node's token
    counts, the hash of the text it relayed, the node's ``mesh.receipt`` (``None`` when
    absent) and, without one, why: ``no_receipt`` (``missing``: it finished without;
    ``broken`` / ``cut``: it never sent its final chunk); ``prompt_claim``: a ``cut`` part's
    signed prompt count, when the gateway believed it (its part then carries it); ``part``:
    which of the request's priced node parts it is (``Tally.parts``' count as it was
    relayed: the earlier nodes' parts come first, the last node's after them), how the
    account stage matches it to its price (``core/part_match.py``; ``NOT_SAID``: not
    written, matched by order: a whole answer's one part, which is its one priced part)."""

    node_id: str
    prompt_tokens: int
    completion_tokens: int
    output_sha256: str
    claim: Any = None
    no_receipt: PartStatus = PartStatus.MISSING
    prompt_claim: PromptClaim | None = None
    part: int = NOT_SAID


class NodeKeys:
    """The keys of nodes the gateway routed to (key text → the key, its node id), bounded:
    only a key that derives the id of the node that sent it is kept (its registered key,
    one a node), so a node sending other keys, a new one each answer, pushes no honest
    node's key out and grows nothing (found 2026-12-06, keys38: every key sent was kept,
    the first in out, so ``max_keys`` bogus ones made each honest key decoded again)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._keys: dict[str, tuple[PublicKey, str]] = {}

    def get(self, text: str, node_id: str) -> PublicKey | None:
        """The key ``text`` when it derives ``node_id`` (the node the gateway routed to),
        else ``None`` (another node's key, or a forged one), kept only then; ``ValueError``
        when it is no key the rule takes (:func:`~LLM_Mesh.core.ed25519.key_problem`)."""
        hit = self._keys.get(text)
        if hit is not None:
            return hit[0] if hit[1] == node_id else None
        raw = unb64url(text)
        if node_id_for(raw) != node_id:  # a hash, before the point's check
            return None
        key = PublicKey(raw)
        if len(self._keys) >= self.max_keys:
            self._keys.pop(next(iter(self._keys)))
        self._keys[text] = (key, node_id)
        return key


def _mismatch(claim: dict[str, Any], expected: dict[str, Any]) -> str:
    """Which field of a node's receipt differs from what the gateway saw."""
    for field in ("request_id", "model", "registry_id"):
        if claim.get(field) != expected[field]:
            return field
    if (claim.get("prompt_tokens"), claim.get("completion_tokens")) != (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    ):
        return "usage"
    if claim.get("output_sha256") != expected["output_sha256"]:
        return "output_sha256"
    return "signature"


def check_part(
    obs: Observed, *, registry_id: str, request_id: str, model: str, keys: NodeKeys
) -> Part:
    """The node's part as the gateway countersigns it: ``signed`` when the node's receipt
    is its key's signature of what the gateway relayed (this request, this model, these
    counts, this output), else ``obs.no_receipt`` without one (a ``cut`` part with its
    node's signed prompt count, ``obs.prompt_claim``: that count, key and signature), or
    ``invalid`` (``reason``: the field).

    The key must derive the id of the node the gateway routed to: a registered node's id
    is its key's hash (checked at registration), so this is the registered key.
    """

    def part(status: PartStatus, node_key: str = "", sig: str = "", reason: str = "") -> Part:
        return Part(obs.node_id, node_key, status, obs.prompt_tokens, obs.completion_tokens,
                    obs.output_sha256, sig, reason)  # fmt: skip

    claim = obs.claim
    if claim is None:
        said = obs.prompt_claim
        if said is not None and obs.no_receipt is PartStatus.CUT:  # verified as it came
            return Part(obs.node_id, said.node_key, PartStatus.CUT, said.prompt_tokens,
                        obs.completion_tokens, obs.output_sha256, said.signature)  # fmt: skip
        return part(obs.no_receipt)
    if not isinstance(claim, dict):
        return part(PartStatus.INVALID, reason="malformed")
    key_text, sig_text = claim.get("node_key"), claim.get("signature")
    if not isinstance(key_text, str) or not isinstance(sig_text, str):
        return part(PartStatus.INVALID, reason="malformed")
    try:
        key = keys.get(key_text, obs.node_id)
    except ValueError:
        key = None
    if key is None:  # no key, another node's key (or a forged one)
        return part(PartStatus.INVALID, reason="node_key")
    try:
        signature = unb64url(sig_text)
        data = node_receipt_bytes(registry_id, obs.node_id, request_id, model,
                                  obs.prompt_tokens, obs.completion_tokens, obs.output_sha256)  # fmt: skip
        if not key.verify(signature, data):
            raise ValueError("the signature does not verify")
    except ValueError:
        expected = {
            "request_id": request_id, "model": model, "registry_id": registry_id,
            "prompt_tokens": obs.prompt_tokens, "completion_tokens": obs.completion_tokens,
            "output_sha256": obs.output_sha256,
        }  # fmt: skip
        return part(PartStatus.INVALID, key_text, reason=_mismatch(claim, expected))
    return part(PartStatus.SIGNED, key_text, sig_text)
