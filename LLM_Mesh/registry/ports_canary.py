"""Quality control's part of the registry's store: canary verifiers, tallies, quarantines.

The record and the protocol (:class:`CanaryStore`, a part of ``ports.Store``) that
``registry/store_canary.py`` (migration 0009) and the MemoryStore implement; out of
``ports.py`` to keep that under 600 lines (cli42, adding ``untrust_verifier``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = ["CanaryRecord", "CanaryStore", "VerifierMark"]


@dataclass
class VerifierMark:
    """A node the admin marked a canary verifier, and the model files it is the reference
    for: model id -> the sha256 declared when marked (``core/verifier_marks.py``; empty: a
    mark older code wrote, before migration 0034 or by a replica not yet at 0036, which
    covers no model); ``marked``: model id -> when that file was marked (what a cached
    reference is kept under, verifier44); ``trusted_at``: the last mark."""

    node_id: str
    models: dict[str, str] = field(default_factory=dict)
    trusted_at: datetime | None = None
    marked: dict[str, datetime] = field(default_factory=dict)


@dataclass
class CanaryRecord:
    """A node and model's canary tally and quarantine (``quarantined_at``: a failed probe,
    not cleared; ``reason`` says why)."""

    node_id: str
    model: str
    passed: int = 0
    failed: int = 0
    last_probe_at: datetime | None = None
    quarantined_at: datetime | None = None
    reason: str | None = None
    updated_at: datetime | None = None

    @property
    def quarantined(self) -> bool:
        return self.quarantined_at is not None


class CanaryStore(Protocol):
    """Quality control's part of the store (``registry/store_canary.py``, migration 0009)."""

    async def trust_verifier(self, node_id: str, models: Mapping[str, str], at: datetime) -> bool:
        """Mark ``node_id`` a canary verifier for ``models`` (model -> sha256), added to its
        marks (a model marked again with another sha256 takes it, marked ``at``; with the
        same, its mark and time stay); ``False`` when nothing changed."""
        ...

    async def untrust_verifier(self, node_id: str, models: Sequence[str] = ()) -> bool:
        """Unmark ``models`` of ``node_id`` (none given: the node is a verifier no more, cli42;
        its last model unmarked: the same); ``False`` when there was nothing to unmark."""
        ...

    async def list_verifiers(self) -> list[VerifierMark]:
        """The verifiers and their marks, by node id."""
        ...

    async def record_canary(
        self,
        node_id: str,
        model: str,
        *,
        ok: bool,
        reason: str | None,
        at: datetime,
        probe: bool = True,
    ) -> CanaryRecord:
        """Count one probe's verdict; a failure quarantines (keeps the first time and reason).
        ``probe=False``: a quarantine found otherwise (the usage audit's, ``ok`` false):
        neither a failed probe counted nor the last probe's time moved."""
        ...

    async def clear_quarantine(self, node_id: str, at: datetime) -> list[str]:
        """Lift every quarantine of ``node_id``; the models cleared."""
        ...

    async def canary_records(self, since: datetime | None = None) -> list[CanaryRecord]:
        """Every record (changed at or after ``since``, when given)."""
        ...

    async def quarantined_nodes_of(self, operator: str) -> list[str]:
        """The nodes whose key ``operator`` holds that are quarantined for some model."""
        ...

    async def held_nodes(self) -> list[str]:
        """Every node whose earnings are held now: those quarantined for some model, and
        every node whose key's operator holds a quarantined node's key (its siblings)."""
        ...
