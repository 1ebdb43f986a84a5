"""Whether a registry starting on a shared store holds a key the store's other registries do not.

Replicas of one network share one ``registry.key`` (docs/deploy.md): the nodes pin it, and
refuse a replica that signs with another (its requests fail over, its heartbeat answers are
refused). A replica started without the file copied in made a key of its own and said
nothing of it (found 2026-12-04: only the nodes' logs told). The store's ``ledger_keys``
lists every key a registry on it signed checkpoints with, so at start a key not among them,
on a store that lists others, is either a rotation (announced: ``registry.key.previous`` or
the kept chain) or a mistake: :func:`stranger_key` says which needs a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["stranger_key"]


def stranger_key(ours: str, stored: Sequence[str], *, rotated: bool) -> str | None:
    """A WARNING's text when ``ours`` (a public key) is new to a store that lists ``stored``
    (its registries' public keys, oldest first) and no rotation leads to it; else None."""
    if not stored or ours in stored or rotated:
        return None
    return (
        f"this registry's key ({ours}) is new to this store, whose registries signed with "
        f"{len(stored)} other key(s), the newest {stored[-1]}: replicas of one network share "
        "one registry.key (docs/deploy.md), and nodes that pinned the others' refuse this "
        "one's requests. Stop it and copy the other replicas' registry.key into its "
        "LLM_MESH_HOME, unless this is a registry of its own on a shared database"
    )
