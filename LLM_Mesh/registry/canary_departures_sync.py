"""The canary's evidence across sampled probes through the store: shared by replicas, kept
over a restart (designed and built 2026-12-06, ``canarystore35``).

``core/canary_departures.Departures`` keeps a CUSUM tally of log-likelihood ratios per
(node, model), (node, model, kind) and (node, model, kind, slice). In one process's memory a
registry restart (each deploy) forgot it, so a liar started from zero again, and replicas of
one store each built their own. As the usage audit's (``usage_audit_sync.py``; the loop,
start and bounded stop shared, ``store_batch.StoreBatch``):

- **hot path** (the prober's probe): ``Departures`` judges in memory as before (a flag fails
  the probe at once) and tells :meth:`DepartureSync.added` each evidence, which composes it
  into this replica's pending step for the tally (``core/canary_departures_step.Step``: two
  numbers and the counts a tally, whatever the probes); no I/O. Bounded (``max_pending``
  keys; past it an evidence is not written, counted in ``dropped``, still judged here). A
  pair started afresh (a flag) or a node forgotten (the admin's ``nodes clear``,
  ``Quality.cleared``) drops its pending steps and is noted to be deleted in the store.
- **every** ``flush_s`` (2 s; :meth:`DepartureSync.run_once`): the deletions, then the
  pending steps, in one transaction (``registry/store_canary_departures.py``: each step
  applied in the row under its lock, so two replicas adding to one row count every probe
  once); then the rows of the pairs written read back (every replica's probes), and each of
  this replica's tallies of them made the row's with the probes added since the write
  applied again (never counted twice); a tally at its threshold so made is a flag:
  ``on_flag`` quarantines the node as a failed probe does, and once that is done the pair
  starts afresh here and in the store (a quarantine that failed is tried again at the next
  run, its evidence kept: review36). A failed write keeps the batch (composed with what came since,
  bounded) and is logged.
- **at start** (:meth:`DepartureSync.load`): every row loaded (the store is bounded, below);
  a flag found whose quarantine fails is logged and kept for the first run, the start goes
  on (review36b).
- **every** ``prune_every`` runs: past each table's bound of ``Departures`` (``Kept``'s
  ``cap``: pairs, kinds, slices apart) the store's lowest scores dropped first, then the
  least recently written, never a row written by this run (``slice34``'s rule). The rows of
  a node whose ``nodes`` row the node retention deleted go with it
  (``node_retention.prune_nodes``).
- **its own**: ``Departures.own``, this replica's probes' tallies alone, in memory, never
  the store's, flag as well (found 2026-12-06, ``review35b``: in the shared tallies a node
  lying to one replica's probes alone, telling them apart by its address, was credited by
  its honest answers to the others' each round and never flagged); a ``nodes clear`` made
  at another replica forgets the node's tallies here when the quality watcher reads it
  (``Quality.apply``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from LLM_Mesh.core.canary_departures import Departures, DepartureTally, Evidence, Key
from LLM_Mesh.core.canary_departures_step import Counts, Step
from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.store_batch import StoreBatch
from LLM_Mesh.registry.store_canary_departures import DepartureRow

__all__ = ["DepartureStore", "DepartureSync", "departure_sync", "shares_departures"]

log = logging.getLogger(__name__)

Drops = dict[tuple[str, str | None], None]  # pairs started afresh, (node, None) forgotten


class DepartureStore(Protocol):
    """The tallies' rows (``registry/store_canary_departures.py``)."""

    async def add_canary_departures(
        self, steps: dict[Key, Step], drops: list[tuple[str, str | None]], written: float
    ) -> None: ...

    async def canary_departure_rows(
        self, pairs: list[tuple[str, str]] | None = None
    ) -> list[DepartureRow]: ...

    async def prune_canary_departures(self, caps: dict[str, int], before: float) -> int: ...


def shares_departures(store: Any) -> bool:
    """Whether ``store`` keeps the canary's tallies (the SQL and memory stores do)."""
    names = ("add_canary_departures", "canary_departure_rows", "prune_canary_departures")
    return all(callable(getattr(store, name, None)) for name in names)


class DepartureSync(StoreBatch):
    """See the module docstring."""

    what = "canary departures"

    def __init__(
        self,
        store: DepartureStore,
        departures: Departures,
        on_flag: Callable[[str, str, DepartureTally], Awaitable[object]],
        *,
        clock: Callable[[], float] = time.time,
        flush_s: float = 2.0,
        prune_every: int = 300,
        max_pending: int = 65536,
        stop_s: float = 10.0,
    ) -> None:
        if prune_every < 1:
            raise ValueError("prune_every must be positive")
        super().__init__(flush_s, stop_s)
        self.store, self.departures, self.on_flag = store, departures, on_flag
        self.clock, self.prune_every = clock, prune_every
        self.max_pending = max(1, max_pending)
        self.pending: dict[Key, Step] = {}
        self.drops: Drops = {}
        self.dropped = 0  # evidence not written: pending full
        self.runs = 0
        # flags found on the store's tallies whose quarantine failed: handed on again
        self.unquarantined: dict[tuple[str, str], DepartureTally] = {}
        departures.on_add, departures.on_drop = self.added, self.started_afresh
        if departures.own is None:  # its own probes judged apart too (``Departures.own``)
            departures.own = Departures(departures.test, departures.tallies.cap,
                                        departures.kinds.cap, departures.slices.cap)  # fmt: skip

    # -- hot path ---------------------------------------------------------------------
    def added(self, key: Key, ev: Evidence) -> None:
        """One evidence added to the tally ``key`` here: into its pending step."""
        step = self.pending.get(key)
        if step is None:
            if len(self.pending) >= self.max_pending:
                self.dropped += 1
                return
            step = self.pending[key] = Step()
        step.add(ev)

    def started_afresh(self, node_id: str, model: str | None) -> None:
        """The pair's tallies (``model`` ``None``: the node's) dropped here: in the store too."""
        for key in [k for k in self.pending if k[0] == node_id and model in (None, k[1])]:
            del self.pending[key]
        self.lifted(node_id, model)
        self.drops[(node_id, model)] = None

    def keep_flag(self, node_id: str, model: str, tally: DepartureTally) -> None:
        """A probe's flag (this replica's tallies) whose quarantine failed: the next run
        writes it (``canary_answers.record_verdict``)."""
        self.unquarantined[(node_id, model)] = tally

    def lifted(self, node_id: str, model: str | None = None) -> None:
        """The admin cleared the node (here, or at another replica: ``Quality.lifted``): a
        flag found before, its quarantine not yet written, goes with its evidence."""
        for pair in [p for p in self.unquarantined if p[0] == node_id and model in (None, p[1])]:
            del self.unquarantined[pair]

    # -- background -------------------------------------------------------------------
    def pending_note(self) -> str:
        return f"{sum(s.probes for s in self.pending.values())} tally addition(s)"

    async def first(self) -> None:
        """Nothing: the app loads the rows before it serves (:meth:`load`)."""

    async def open(self) -> None:
        """At start: :meth:`load`, then the batches' loop; one that raises once its loop
        started stops it first (the app records :meth:`stop` only once this returned:
        ``app_stops.Stops``; start40)."""
        await self.load()
        try:
            self.start()
        except BaseException:
            await self.abandon()
            raise

    async def load(self) -> int:
        """Every row into the tallies (at start); the flags found handed on; rows loaded."""
        rows = await self.store.canary_departure_rows()
        await self._take(rows, {k[:2] for k, _ in rows})
        try:  # kept, tried again at the first run: the start goes on (found 2026-12-06,
            await self._quarantine()  # review36b: the app did not start while it failed)
        except Exception:
            log.exception("canary: a flag found at start not quarantined yet; tried again")
        return len(rows)

    async def tick(self) -> int:
        return await self.run_once()

    async def flush(self) -> set[tuple[str, str]]:
        """Write the deletions and the pending steps in one transaction (kept, composed with
        what came since, on failure); the pairs written."""
        steps, drops = self.pending, self.drops
        self.pending, self.drops = {}, {}
        if not steps and not drops:
            return set()
        try:
            await self.store.add_canary_departures(steps, list(drops), self.clock())
        except Exception:
            self._keep(steps, drops)
            raise
        return {k[:2] for k in steps}

    def _keep(self, steps: dict[Key, Step], drops: Drops) -> None:
        """A failed batch back before what came since: a pair started afresh since keeps
        only the steps after it (the newer's); the others' steps composed, bounded."""
        newer, self.pending = self.pending, {}
        for key, step in steps.items():
            if (key[0], key[1]) in self.drops or (key[0], None) in self.drops:
                continue
            if key in newer:
                self.pending[key] = step.then(newer.pop(key))
            elif len(self.pending) + len(newer) < self.max_pending:
                self.pending[key] = step
            else:
                self.dropped += step.probes
        self.pending.update(newer)
        self.drops = {**drops, **self.drops}

    async def run_once(self) -> int:
        """Flush, then read back the pairs written and take every replica's tallies; the
        flags found (each handed to ``on_flag``)."""
        written_at = self.clock()
        pairs = await self.flush()
        flags = 0
        if pairs:
            rows = await self.store.canary_departure_rows(sorted(pairs))
            flags = await self._take(rows, pairs)
        self.runs += 1
        if self.runs % self.prune_every == 0:
            d = self.departures
            caps = {"pairs": d.tallies.cap, "kinds": d.kinds.cap, "slices": d.slices.cap}
            await self.store.prune_canary_departures(caps, written_at)
        await self._quarantine()  # (one that failed at an earlier run: again)
        return flags

    async def _take(self, rows: list[DepartureRow], pairs: set[tuple[str, str]]) -> int:
        """Each tally of ``pairs`` made the store's (``rows``) with the steps pending since
        applied; a flag: the pair afresh, handed to ``on_flag``."""
        d, stored = self.departures, dict(rows)
        keys = {k for k in stored} | {k for p in pairs for k in d.keys_of(*p)}
        flagged: dict[tuple[str, str], DepartureTally] = {}
        for key in sorted(keys):
            if key[:2] in flagged or key[:2] in self.drops or (key[0], None) in self.drops:
                continue  # started afresh since the write: its rows are the next batch's to delete
            now = stored.get(key, Counts())
            step = self.pending.get(key)
            if step is not None:
                now = step.apply(now)
            flag = d.set(key, now.score, now.probes, now.departures, now.at_first)
            if flag is not None:
                flagged[(key[0], key[1])] = flag
        for (node_id, model), tally in flagged.items():
            log.warning("canary: node %s flagged for %s on the store's tallies: %s",
                        node_id, model, tally.describe())  # fmt: skip
        self.unquarantined.update(flagged)
        return len(flagged)

    async def _quarantine(self) -> None:
        """Hand each flag found to ``on_flag``; only once it is done the pair starts afresh
        (its rows deleted by the next batch). One that failed (the store away: the
        quarantine not written) is kept and handed on again at the next run, its evidence
        with it (found 2026-12-06, review36: the pair was started afresh first, so a failed
        quarantine lost both the quarantine and the evidence for good)."""
        failed: Exception | None = None
        for pair, tally in list(self.unquarantined.items()):
            try:
                await self.on_flag(pair[0], pair[1], tally)
            except Exception as exc:  # kept: tried again at the next run
                failed = failed or exc
                continue
            del self.unquarantined[pair]
            self.departures.afresh(*pair)  # (noted: deleted from the store by the next batch)
        if failed is not None:
            raise failed


def departure_sync(store: Any, prober: CanaryProber) -> DepartureSync | None:
    """The app's: ``prober``'s tallies through ``store`` (``None``: a store that keeps none),
    a flag found on the store's tallies quarantining the node as a failed probe does."""
    if not shares_departures(store):
        return None
    quality = prober.quality

    async def flagged(node_id: str, model: str, tally: DepartureTally) -> None:
        await quality.record(node_id, model, ok=False, reason=f"canary: {tally.describe()}")

    sync = DepartureSync(cast(DepartureStore, store), prober.departures, flagged)
    quality.lifted.append(sync.lifted)  # a clear read from the store: its flags go too
    prober.shared = sync
    return sync
