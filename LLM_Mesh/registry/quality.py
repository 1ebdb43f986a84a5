"""Quality control's live state: verifiers, canary tallies, quarantines, trust scores.

One :class:`Quality` per registry process (``Runtime.quality``). It mirrors the
store's ``canary_verifiers`` and ``canary_status`` (migration 0009): a verdict is
written to the store first, then applied here; :class:`QualityWatcher` polls the
store every second for changes made elsewhere (another registry's verdict, the
admin's ``llm-mesh registry nodes clear``, ``trust`` or ``untrust``), as the revocation
watcher does. A quarantine takes the node out of routing for that model at once
(:meth:`Routing.set_quarantined`); a clear puts it back. While a node has any
quarantine its earnings are held, and so are those of every other node of its
operator (:meth:`Quality.held`, which settlement asks when it records an answer:
``registry/held.py``). The set of held nodes is read from the store
(``Store.held_nodes``) whenever the records are loaded and some quarantine is known,
after a failed probe, after a clear and after a registration claimed a key
(``registry/api.py``: a key claimed just as its operator was caught is held at once):
every replica learns it as it learns the quarantines, and the hot path asks a
``frozenset``.

The trust score (``core/trust.py``) is computed on demand from the canary tally,
the router's success rate and per-token speed, and the node's recorded
failures; ``trusted_nodes(model)`` is what ``trusted_only`` routes to, scored on that
model's passed probes only (a node trusted for one model is not trusted for another no
verifier checked). The node-wide score (``view``, ``GET /mesh/nodes``) counts them all.
A verifier (the admin's reference, not probed against itself) has the canary factor 1 for
the model files the admin marked it for (model and sha256, ``core/verifier_marks.py``)
while it serves them so, unless quarantined: it is trusted with a clean record (before
2026-12-07 it scored 0.5 and ``trusted_only`` never reached it, user41b). A model it
declares later, or under another sha256, is not marked: there it is any node (before
2026-12-07, verifier43, a mark covered every model it declared). A mark made before
migration 0034 (or by a replica not yet at 0036) covers no model, said once in the log as
the registry reads it. Each mark's time (:meth:`Quality.mark_of`) names it: the prober keeps
a verifier's references under it, so marked again a verifier is asked anew (verifier44).

What the public sees of passed probes (``view``: ``GET /mesh/nodes``, ``node info``, the
dashboard; and :meth:`Quality.public_score`) is each model's tally as it stood at the
start of the current hour, in power-of-two steps (``core/canary_publish.py``): shown live,
a node reading it after each answer learned which of its requests were probes; shown
exact an hour late, which request of a quiet hour was. Routing (``trusted_nodes``) and
the admin's listing (``view(live=True)``, with the last probe's time) use the live tally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from LLM_Mesh.core.canary_publish import DEFAULT_PERIOD_S, DelayedTally, Tally, coarse
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.quarantine_reason import reason_kind
from LLM_Mesh.core.trust import (
    DEFAULT_THRESHOLD,
    TrustInputs,
    TrustScore,
    speed_explained,
    trust_score,
)
from LLM_Mesh.core.verifier_marks import covers, unmarked_text
from LLM_Mesh.registry.node_table import NodeEntry
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.ports_canary import CanaryRecord
from LLM_Mesh.registry.routing import Routing

__all__ = ["Quality", "QualityWatcher"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Quality:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        routing: Routing,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        wall_now: Callable[[], datetime] = _utcnow,
        publish_period_s: float = DEFAULT_PERIOD_S,
    ) -> None:
        self.store = store
        self.routing = routing
        self.table = routing.table
        self.threshold = threshold
        self.now = wall_now
        # the verifiers' marks: node id -> model -> sha256 (``core/verifier_marks.py``)
        self.verifiers: Mapping[str, Mapping[str, str]] = {}
        # ... and when each was marked: node id -> model -> time (what names a mark: a
        # reference cached under an earlier one is not used, ``registry/canary.py``)
        self.marked: Mapping[str, Mapping[str, datetime]] = {}
        self._said_unmarked: set[str] = set()  # marks before 0034 (no models), logged once
        self.records: dict[str, dict[str, CanaryRecord]] = {}  # node id -> model -> record
        self.published = DelayedTally(publish_period_s)  # what the public sees of them
        # quarantined nodes and their operators' other nodes (Store.held_nodes)
        self.held_nodes: frozenset[str] = frozenset()
        # bumped by every change of what ``view`` shows but the scores (verifiers, records,
        # quarantines): ``GET /mesh/nodes`` is built again after one (``node_listing.py``)
        self.changes = 0
        # called with the node's id when the admin clears it (the canary's evidence across
        # probes, ``core/canary_departures.py``, starts afresh)
        self.cleared: list[Callable[[str], None]] = []
        # ... and with each node whose quarantine another replica lifted (read from the
        # store, :meth:`apply`): what this process holds of that evidence, not the store's
        # (that clear deleted it; the rows since are evidence after it, review35d)
        self.lifted: list[Callable[[str], None]] = []
        # called with the reason of each new quarantine (the gateway's metric)
        self.on_quarantine: Callable[[str | None], None] | None = None

    # -- state from the store ------------------------------------------------------------
    async def load(self, since: datetime | None = None) -> None:
        """Read verifiers and canary records (all, or those changed since ``since``)."""
        await self.load_verifiers()
        for rec in await self.store.canary_records(since):
            self.apply(rec)
        await self.refresh_held()

    async def load_verifiers(self) -> None:
        """Read the verifiers' marks (a mark older code wrote, none: said once)."""
        marks = await self.store.list_verifiers()
        verifiers = {v.node_id: v.models for v in marks}
        self.marked = {v.node_id: v.marked for v in marks}
        if verifiers != self.verifiers:
            self.verifiers, self.changes = verifiers, self.changes + 1
            for node_id in sorted(n for n, m in verifiers.items() if not m):
                if node_id not in self._said_unmarked:
                    self._said_unmarked.add(node_id)
                    log.warning("%s", unmarked_text(node_id))

    async def refresh_held(self) -> None:
        """Read the held nodes from the store: skipped (no query) while no quarantine is
        known here and none was."""
        if self.held_nodes or any(
            r.quarantined for mine in self.records.values() for r in mine.values()
        ):
            held = frozenset(await self.store.held_nodes())
            if held != self.held_nodes:
                self.held_nodes, self.changes = held, self.changes + 1

    def apply(self, rec: CanaryRecord) -> None:
        """Take one record in (unless an older one than we hold: a poll that read the store
        before a verdict or a clear must not undo it); routing follows its quarantine."""
        mine = self.records.setdefault(rec.node_id, {})
        held = mine.get(rec.model)
        if (
            held is not None
            and held.updated_at is not None
            and rec.updated_at is not None
            and rec.updated_at < held.updated_at
        ):
            return
        if mine.get(rec.model) != rec:
            self.changes += 1
            at = (rec.updated_at or self.now()).timestamp()
            tally = Tally(rec.passed)
            self.published.note(rec.node_id, rec.model, at, tally)
        mine[rec.model] = rec
        if held is not None and held.quarantined and not rec.quarantined:
            # lifted elsewhere (another replica's ``nodes clear``, read from the store): its
            # evidence forgotten here too, as :meth:`clear` does (found 2026-12-06,
            # review35b: this replica's tallies, the store's as last read back, flagged the
            # node again at its first departure after the clear)
            for forget in self.lifted:
                forget(rec.node_id)
        self._sync_routing(rec.node_id)

    def _sync_routing(self, node_id: str) -> None:
        mine = self.records.get(node_id, {})
        self.routing.set_quarantined(
            node_id, frozenset(m for m, r in mine.items() if r.quarantined)
        )

    async def record(
        self, node_id: str, model: str, *, ok: bool, reason: str | None, probe: bool = True
    ) -> CanaryRecord:
        """One probe's verdict: stored, then applied (a failure quarantines at once).
        ``probe=False``: a quarantine found otherwise (the usage audit's), not a failed probe
        (``canary_failed`` and the last probe's time do not move)."""
        already = self.quarantined(node_id, model)
        rec = await self.store.record_canary(
            node_id, model, ok=ok, reason=reason, at=self.now(), probe=probe
        )
        self.apply(rec)
        if rec.quarantined and not ok:
            await self.refresh_held()  # its operator's other nodes are held from now
        if rec.quarantined and not ok and not already:  # one line and count a quarantine
            # (found 2026-12-05: headed "canary:" for the usage audit's too, and counted
            # only by the usage audit's own metric)
            kind = reason_kind(rec.reason)
            log.warning("node %s quarantined for %s (%s): %s", node_id, model, kind, rec.reason)
            if self.on_quarantine is not None:
                self.on_quarantine(rec.reason)
        return rec

    async def trust(self, node_id: str, models: Mapping[str, str] | None = None) -> bool:
        """Mark ``node_id`` a verifier for ``models`` (model -> sha256; ``None``: the models
        it serves now with a declared sha256), as the admin's ``registry nodes trust``."""
        if models is None:
            entry = self.table.get(node_id)
            hosted = entry.models.values() if entry is not None else ()
            models = {h.id: h.sha256.lower() for h in hosted if h.sha256}
        added = await self.store.trust_verifier(node_id, models, self.now())
        await self.load_verifiers()  # as stored: a mark's time is the store's
        self.changes += 1
        return added

    def vouches(self, node_id: str, model: str, sha256: str | None) -> bool:
        """Whether ``node_id`` is a verifier marked for ``model``'s file ``sha256``: its
        answers may be the reference for that file, and for no other."""
        return covers(self.verifiers.get(node_id), model, sha256)

    def mark_of(self, node_id: str, model: str) -> datetime | None:
        """When ``node_id`` was marked for ``model`` (``None``: it is not)."""
        return self.marked.get(node_id, {}).get(model)

    async def clear(self, node_id: str) -> list[str]:
        """Lift the node's quarantines (the admin's ``registry nodes clear``)."""
        models = await self.store.clear_quarantine(node_id, self.now())
        at = self.now()
        for rec in self.records.get(node_id, {}).values():
            rec.quarantined_at, rec.reason, rec.updated_at = None, None, at
        self.changes += 1
        for forget in self.cleared:
            forget(node_id)
        self._sync_routing(node_id)
        await self.refresh_held()
        return models

    # -- questions --------------------------------------------------------------------------
    def quarantined(self, node_id: str, model: str) -> bool:
        rec = self.records.get(node_id, {}).get(model)
        return rec is not None and rec.quarantined

    def held(self, node_id: str) -> bool:
        """Whether the node's earnings are held: it, or another node of its operator, is
        quarantined for any model (from the first failed probe until the admin clears it;
        ``registry/held.py``). Per request: a set look-up, then the node's own records."""
        return node_id in self.held_nodes or any(
            r.quarantined for r in self.records.get(node_id, {}).values()
        )

    def quarantines(self, node_id: str) -> list[CanaryRecord]:
        mine = self.records.get(node_id, {})
        return [mine[m] for m in sorted(mine) if mine[m].quarantined]

    def passed(self, node_id: str, model: str | None = None) -> int:
        """Probes the node passed: for ``model``, or for any model (``None``)."""
        mine = self.records.get(node_id, {})
        if model is not None:
            rec = mine.get(model)
            return rec.passed if rec is not None else 0
        return sum(r.passed for r in mine.values())

    def failed(self, node_id: str) -> int:
        return sum(r.failed for r in self.records.get(node_id, {}).values())

    def shown(self, node_id: str) -> dict[str, int]:
        """Each model's passed probes as the public sees them: as at the start of the
        current period, in power-of-two steps (``core/canary_publish.py``)."""
        now = self.now().timestamp()
        mine = self.records.get(node_id, {})
        return {m: coarse(self.published.shown(node_id, m, now).passed) for m in sorted(mine)}

    def public_score(self, node_id: str) -> TrustScore:
        """:meth:`score` on the tally the public sees (:meth:`shown`, summed)."""
        return self.score(node_id, canary_passed=sum(self.shown(node_id).values()))

    def last_probe(self, node_id: str) -> datetime | None:
        """The node's last probe (any model), live: the admin's view only."""
        return max(
            (r.last_probe_at for r in self.records.get(node_id, {}).values() if r.last_probe_at),
            default=None,
        )

    def score(
        self, node_id: str, model: str | None = None, *, canary_passed: int | None = None
    ) -> TrustScore:
        """The node's trust score; with ``model``, its canary factor counts only the
        probes of that model passed (trust earned on one model is not trust in another
        that no verifier could check), a quarantine for any model still zeroes it.
        ``canary_passed``: the passed probes to count instead of the live tally's.
        A verifier's canary factor is 1 for a model it serves with the sha256 it was marked
        for (it is the reference for that file's probes; node-wide: for any such model)."""
        entry = self.table.get(node_id)
        verifier = _reference_for(entry, model, self.verifiers.get(node_id))
        st = self.routing.router.node(node_id)
        success = st.success.value if st is not None else None
        # the speed the node showed, as of its last answer: not ``get(now)``, which decays
        # toward zero while it is idle (so the router tries it again) and, read here, made an
        # idle honest node's speed look impossible (found 2026-12-07: trust 0.25, "speed 0.50",
        # after some six idle minutes)
        per_token = st.per_token.peak if st is not None else None
        return trust_score(
            TrustInputs(
                canary_passed=(
                    self.passed(node_id, model) if canary_passed is None else canary_passed
                ),
                # a revoked key scores as a quarantine (attack44: a revoked verifier was
                # listed trust 1.0, trusted, verifier: its mark outlives its key)
                quarantined=bool(self.quarantines(node_id)) or _revoked(entry),
                success_rate=success,
                requests=entry.requests if entry is not None else 0,
                failures=entry.failures if entry is not None else 0,
                speed_unexplained=entry is not None and not _speed_ok(entry, per_token),
                verifier=verifier,
            )
        )

    def trusted_nodes(self, model: str) -> frozenset[str]:
        """Nodes hosting ``model``, not quarantined for it, scoring at least the threshold
        on that model's own probes (:meth:`score` with ``model``)."""
        return frozenset(
            e.node_id
            for e in self.table.entries()
            if model in e.models
            and not self.quarantined(e.node_id, model)
            and self.score(e.node_id, model).score >= self.threshold
        )

    def view(self, node_id: str, *, live: bool = False) -> dict[str, Any]:
        """What ``GET /mesh/nodes`` adds to a node: trust score and passed probes (as at
        the start of the hour, in power-of-two steps: :meth:`shown`; ``live``, the admin's
        listing: as they are, and the last probe's time), failed probes and quarantines
        (at once)."""
        passed = self.passed(node_id) if live else sum(self.shown(node_id).values())
        s = self.score(node_id, canary_passed=passed)
        extra: dict[str, Any] = {}
        if live:
            last = self.last_probe(node_id)
            extra["canary_last_probe"] = last.isoformat() if last is not None else None
        return {
            "trust_score": s.score,
            "trusted": s.score >= self.threshold,
            # marked for some model, its key not revoked (the mark stays: the admin's listing)
            "verifier": bool(self.verifiers.get(node_id)) and not _revoked(self.table.get(node_id)),
            "canary_passed": passed,
            "canary_failed": self.failed(node_id),  # each one a quarantine, shown at once
            "quarantined": [
                {
                    "model": r.model,
                    "since": r.quarantined_at.isoformat() if r.quarantined_at else None,
                    "reason": r.reason,
                }
                for r in self.quarantines(node_id)
            ],
            **extra,
        }


def _revoked(entry: NodeEntry | None) -> bool:
    """Whether ``entry``'s key was revoked (it scores as a quarantine, no verifier)."""
    return entry is not None and entry.revoked


def _reference_for(
    entry: NodeEntry | None, model: str | None, marks: Mapping[str, str] | None
) -> bool:
    """Whether a verifier's answers are the probes' reference for ``model`` (``None``: for
    any model it serves): the admin marked it for the file it serves under that name (model
    and sha256, ``core/verifier_marks.py``), which probes match files by
    (``registry/canary.py``); a model without a sha256 no verifier can check, itself
    included, and one it was not marked for the admin never checked."""
    if entry is None or not marks or _revoked(entry):
        return False
    if model is None:
        return any(covers(marks, m, h.sha256) for m, h in entry.models.items())
    hosted = entry.models.get(model)
    return hosted is not None and covers(marks, model, hosted.sha256)


def _speed_ok(entry: NodeEntry, per_token_ms: float | None) -> bool:
    """Whether the node's observed speed fits its declared hardware (``core/trust.py``)."""
    if per_token_ms is None or per_token_ms <= 0:
        return True
    sizes = [get_spec(m).size_bytes for m in entry.models if get_spec(m) is not None]  # type: ignore[union-attr]
    if not sizes:
        return True
    return speed_explained(1000.0 / per_token_ms, min(sizes), has_gpu=bool(entry.hardware.gpus))


class QualityWatcher(Poller):
    """Changes to verifiers and canary records made elsewhere, every ``interval_s``."""

    task_name = "llm-mesh-quality"

    def __init__(
        self, quality: Quality, *, interval_s: float = 1.0, overlap_s: float = 300.0
    ) -> None:
        self.quality = quality
        self.interval_s = interval_s
        self.overlap = timedelta(seconds=overlap_s)
        self._since: datetime | None = None

    async def poll(self) -> None:
        started = self.quality.now()
        await self.quality.load(self._since)
        self._since = started - self.overlap
