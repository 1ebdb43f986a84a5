"""Comparing signed checkpoints between verifiers: catching a split view.

One ``llm-mesh ledger verify`` checks everything a registry shows it, and remembers what
it saw; it cannot tell that the registry shows another, equally self-consistent history
to someone else (a *split view*). Certificate Transparency's gossip and the C2SP
``tlog-witness`` practice close that gap: verifiers exchange the checkpoints the log
signed for them and check that each is consistent with their own. This module is that
decision, pure (the caller reads the foreign checkpoint and fetches the proof):

1. :func:`open_foreign`: the foreign checkpoint must be a signed note of this ledger
   (its origin) by a key *this* verifier trusts (the registry's published keys, or the
   one it pinned), never a key the foreign file names; otherwise it proves nothing
   (:class:`~LLM_Mesh.core.checkpoint.BadCheckpoint`, reported as ``signature``).
2. :func:`judge`, against this verifier's own newest verified checkpoint:

   - the same size: the roots must be equal (no proof needed);
   - different sizes: an RFC 9162 §2.1.4 consistency proof from the smaller to the
     larger (asked of the registry: :func:`proof_sizes`) must verify against both
     signed roots (``core/merkle_verify.py``).

   Two validly signed checkpoints that fail this are a ``split view``: the registry's
   own signatures on two histories, evidence anyone can check offline. A registry that
   gives no proof at all leaves it ``unproven``.

The exchange format (:func:`export`, ``llm-mesh ledger checkpoint``) is a JSON object
around the C2SP signed note; :func:`note_from` also takes the bare note.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, open_checkpoint
from LLM_Mesh.core.merkle import EMPTY_ROOT
from LLM_Mesh.core.merkle_verify import verify_consistency

__all__ = [
    "EXPORT_FORMAT",
    "Verdict",
    "export",
    "judge",
    "note_from",
    "open_foreign",
    "proof_sizes",
]

EXPORT_FORMAT = "llm-mesh/ledger-checkpoint/v1"
MAX_NOTE = 64 * 1024  # far beyond a checkpoint note with a few signatures

CONSISTENT, SPLIT_VIEW, UNPROVEN = "consistent", "split view", "unproven"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison: ``kind`` is ``consistent``, ``split view`` or
    ``unproven``."""

    kind: str
    message: str

    @property
    def ok(self) -> bool:
        return self.kind == CONSISTENT


def export(cp: Checkpoint, public_key: str, registry: str | None) -> dict[str, Any]:
    """The exchange form of a checkpoint this verifier checked: what it says, the key that
    signed it (base64; informative: the receiver checks with the key it trusts) and the
    registry it came from (``None`` for a store read directly)."""
    return {
        "format": EXPORT_FORMAT,
        "registry": registry,
        "origin": cp.origin,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash.hex(),
        "time_us": cp.time_us,
        "public_key": public_key,
        "note": cp.note,
    }


def note_from(text: str) -> str:
    """The signed note in ``text``: the ``note`` of an :func:`export` object, or the text
    itself when it is not JSON (a bare C2SP signed note)."""
    if len(text) > MAX_NOTE:
        raise BadCheckpoint(f"longer than {MAX_NOTE} characters: not a checkpoint")
    if not text.lstrip().startswith("{"):
        return text
    try:
        data = json.loads(text)
    except RecursionError:  # found 2026-12-04: a '{"a":[[[[...' ended `ledger verify`
        raise BadCheckpoint("JSON nested too deep to read: not a checkpoint") from None
    except ValueError as exc:
        raise BadCheckpoint(f"not JSON: {exc}") from None
    note = data.get("note") if isinstance(data, Mapping) else None
    if not isinstance(note, str):
        raise BadCheckpoint("a JSON checkpoint without a 'note' string")
    return note


def open_foreign(text: str, origin: str, keys: Sequence[str]) -> Checkpoint:
    """The checkpoint in ``text`` (see :func:`note_from`), signed by one of ``keys`` (base64
    public keys this verifier trusts) for ``origin``; else :class:`BadCheckpoint`."""
    note = note_from(text)
    if not keys:
        raise BadCheckpoint("no trusted key to check it with")
    error: BadCheckpoint | None = None
    for key in keys:
        try:
            return open_checkpoint(note, origin, base64.b64decode(key))
        except BadCheckpoint as exc:  # a key that signed it but does not verify says most
            if error is None or "does not verify" in str(exc):
                error = exc
        except ValueError as exc:  # a trusted key that is not an Ed25519 public key
            raise BadCheckpoint(f"a trusted key is not usable: {exc}") from None
    raise error or BadCheckpoint("no trusted key to check it with")


def proof_sizes(ours: Checkpoint, theirs: Checkpoint) -> tuple[int, int] | None:
    """The (first, second) consistency proof :func:`judge` needs; ``None`` when the sizes
    are equal or one is the empty tree (no proof then)."""
    first, second = sorted((ours.tree_size, theirs.tree_size))
    return None if first == second or first == 0 else (first, second)


def _short(cp: Checkpoint) -> str:
    return f"size {cp.tree_size} (root {cp.root_hash.hex()[:16]}…)"


def judge(ours: Checkpoint, theirs: Checkpoint, proof: Sequence[bytes] | None) -> Verdict:
    """Is ``theirs`` (a foreign checkpoint, opened) one history with ``ours``? ``proof``:
    the registry's consistency proof between :func:`proof_sizes`, ``None`` if it gave
    none (both checkpoints must be signed by the trusted key already)."""
    if ours.origin != theirs.origin:
        raise ValueError("checkpoints of two ledgers are not compared")
    sizes = proof_sizes(ours, theirs)
    if ours.tree_size == theirs.tree_size:
        if ours.root_hash == theirs.root_hash:
            return Verdict(CONSISTENT, f"{_short(theirs)}: the same checkpoint as this view's")
        return Verdict(
            SPLIT_VIEW,
            f"the registry signed two roots for size {ours.tree_size}: "
            f"{ours.root_hash.hex()} here, {theirs.root_hash.hex()} there",
        )
    small, large = (ours, theirs) if ours.tree_size < theirs.tree_size else (theirs, ours)
    if sizes is None:  # one of them is the empty tree: a prefix of every tree
        if small.root_hash != EMPTY_ROOT:
            return Verdict(
                SPLIT_VIEW, "the registry signed a root for the empty tree that is not its root"
            )
        return Verdict(CONSISTENT, f"{_short(theirs)}: the empty tree is a prefix of every tree")
    first, second = sizes
    if proof is None:
        return Verdict(
            UNPROVEN,
            f"{_short(theirs)}: the registry gave no consistency proof from size {first} to "
            f"{second}, so nothing shows it is the history of this view's {_short(ours)}",
        )
    if verify_consistency(first, second, small.root_hash, large.root_hash, proof):
        how = "extends" if theirs.tree_size > ours.tree_size else "is a prefix of"
        return Verdict(
            CONSISTENT, f"{_short(theirs)} {how} this view's {_short(ours)} (consistency proof)"
        )
    return Verdict(
        SPLIT_VIEW,
        f"the registry's checkpoints at size {first} and {second} are not one history: its "
        "consistency proof between them fails",
    )
