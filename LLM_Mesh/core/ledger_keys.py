"""Which of the ledger keys a registry publishes a verifier trusts: those it remembered
from an earlier run, and those a signed rotation chain leads to from one of them.

``GET /v1/ledger/keys`` lists the keys that sign the log's checkpoints. Until 2026-12-05
``ledger verify`` took that list as it came on each run: a new key (a compromised
registry, or a man in the middle on plain http) signing a forged extension of the log
passed. Now a verifier remembers the keys it trusted (``cli/ledger_seen.py``) and on a
later run a key it does not remember counts only when the registry's chain of rotation
statements (``core/key_rotation.py``, ``core/key_chain.py``: the ledger key is the
registry's ``registry.key``, the one a node follows across rotations) leads to it from a
remembered key, each old key signing the next. Keys are compared by their 32 raw bytes
(the list gives standard base64, the chain base64url). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from LLM_Mesh.core.b64url import ed25519_key
from LLM_Mesh.core.identity import encode_public_key
from LLM_Mesh.core.key_chain import ChainRefused, follow_chain, link_of

__all__ = ["KeyTrust", "judge_keys"]


@dataclass(frozen=True)
class KeyTrust:
    """What a run makes of the published keys (each as published)."""

    trusted: tuple[str, ...]  # remembered, reached by rotation, or every one on first use
    first_use: tuple[str, ...] = ()  # nothing remembered yet: every published key
    # (key, the remembered key the chain starts at, links followed)
    rotated: tuple[tuple[str, str, int], ...] = ()
    new: tuple[str, ...] = ()  # neither remembered nor reached: not trusted
    why: str = ""  # why no chain reaches the first of ``new``


def _raw(key: str) -> bytes | None:
    return ed25519_key(key) if isinstance(key, str) else None


def _reached(chain: object, remembered: Sequence[str]) -> tuple[dict[bytes, tuple[str, int]], str]:
    """The keys ``chain`` vouches for from a remembered key (raw key -> (that remembered
    key, links followed)), and why none when it vouches for none."""
    if not isinstance(chain, list) or not chain:
        return {}, "the registry serves no signed rotation statement"
    last = link_of(chain[-1])
    if last is None:
        return {}, "the registry's rotation chain is malformed"
    reached: dict[bytes, tuple[str, int]] = {}
    why = ""
    for known in remembered:
        raw = _raw(known)
        if raw is None or encode_public_key(raw) == last["public_key"]:
            continue  # the chain's end: no key after it to reach, nor a failure (replica41)
        try:
            path = follow_chain(chain, encode_public_key(raw), last["public_key"])
        except ChainRefused as exc:
            why = why or f"its rotation chain does not lead there from a remembered key ({exc})"
            continue
        for links, key in enumerate(path[1:], 1):
            got = _raw(key)
            if got is not None and got not in reached:
                reached[got] = (known, links)
    return reached, why


def judge_keys(
    published: Sequence[str], remembered: Sequence[str] | None, chain: object
) -> KeyTrust:
    """``published`` (``GET /v1/ledger/keys``) judged against the keys remembered for this
    ledger (``None``: none yet, a first use: each is trusted and said so) and the
    registry's rotation chain (its ``key_rotations``, oldest first)."""
    if remembered is None:
        return KeyTrust(trusted=tuple(published), first_use=tuple(published))
    known = {r for r in map(_raw, remembered) if r is not None}
    trusted: list[str] = []
    rotated: list[tuple[str, str, int]] = []
    new: list[str] = []
    reached: dict[bytes, tuple[str, int]] | None = None
    why = ""
    for key in published:
        raw = _raw(key)
        if raw is not None and raw in known:
            trusted.append(key)
            continue
        if reached is None:
            reached, why = _reached(chain, remembered)
        hit = reached.get(raw) if raw is not None else None
        if hit is not None:
            trusted.append(key)
            rotated.append((key, hit[0], hit[1]))
        else:
            new.append(key)
    if new and not why:
        why = "no signed rotation statement from a remembered key names it"
    return KeyTrust(tuple(trusted), (), tuple(rotated), tuple(new), why if new else "")
