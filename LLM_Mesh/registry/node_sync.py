"""Nodes other replicas heard from reach this replica's table and router.

A node registers and heartbeats at one replica (whichever its registry list or the load
balancer gave it); every replica must route to it. :class:`NodeSync` (a
:class:`~LLM_Mesh.registry.poller.Poller`, every ``interval_s``, 1 s) asks the store for

- nodes whose registration or state changed (``nodes.changed_at``, stamped by the store
  on its own clock in every write that sets it: ``store_rewards.changed_clock``,
  PostgreSQL's ``statement_timestamp()``; SQLite and the memory store: the process's
  clock) since its last poll, windowed on the store's clock alone (below; found
  2026-12-07, changed42: the writers' wall stamps against this wall clock, a replica an
  hour ahead never learnt by its poll a node registered at another, one behind read the
  last hour's changes again each poll): a node new here, or re-registered with other models, address, capacity, TLS
  certificate or ``keeps_no_prompts`` declaration, is put into the table and the router,
  its certificate's pin into the pins
  (:func:`~LLM_Mesh.registry.snapshot.entry_from_record`): this replica may never see its
  registration, and calls it pinned, and routes to it as it declared (``nodes.keeps_no_prompts``,
  migration 0029: a node that may keep prompts gets only requests that opt in), all the same,
  its last heartbeat aged on the store's clock as below; a node that went OFFLINE (said
  goodbye, revoked) leaves routing;
- nodes heard since at *other* replicas (``heard_by``), with their heartbeat age on the
  store's own clock: every heartbeat and registration is stamped by the store
  (``nodes.heard_store_at``: PostgreSQL's ``clock_timestamp()``; SQLite and the memory
  store: the process's clock, one host; migration 0033), and the poll reads the store's
  clock in the same statement as the rows (``HeardRows.store_now``), so a row's age is one
  clock's difference, whatever any replica's wall clock does; the node is heard at this
  table's clock less that age (``clock_at`` says it instead: the in-process tests' clock,
  which moves only when told, says what it read when a row was stamped,
  tests/registry/helpers.py), never later than now (``core/store_heard.py``), and a
  keyed request (``nodes.keyed_at``) that much before it as the writer's two stamps differ.
  So a node heartbeating at replica A stays routable at B exactly while it beats;
- active health-check results since (``node_checks``, written by whichever replica held
  the node's lease, :class:`StoreHealthLeases`), with since when the checks find the node
  so and the failed check's reason (migration 0016), so every replica tells the node the
  same in its heartbeat answers; unless this replica holds a newer result for the node
  (``NodeEntry.checked_at``: its own check, whose row is written only after its pass, can
  be newer than the row a poll read meanwhile). At start :meth:`NodeSync.load_checks`
  reads every stored result once: a restarted replica keeps them.

Each poll reaches ``overlap_s`` (5 s) back on the store's clock (the last read's
``store_now``, read before the changed rows; the first poll reads every stamped heartbeat
row, and the changes since the nodes were loaded: its store clock less the time since
then on the clock that never steps) and, for heartbeats, on this wall clock (the
writers' stamps, ``last_heartbeat_at``), so a row whose transaction committed late is
still seen (a ``changed_at`` a replica of the previous version wrote from its wall clock
is read against the store's: missed where that clock is more than the overlap behind); applying a row twice changes nothing (a heartbeat only ever moves forward,
and a row the store stamped reads the same at each poll).

A row the store did not stamp (written before 0033, or by a replica of the previous
version during a rolling upgrade, whose heartbeat moves ``last_heartbeat_at`` and not
``heard_store_of``: ``core/store_heard.store_stamp``) is read as before, by its writer's
wall-clock stamp (``core/beat_stamp.py``): applied only the first time its stamp is read
(a wall clock stepped back would read it as heard now at every poll: found 2026-12-06,
sync39); the first read aged on the latest of this wall clock, this wall clock as it would
read had it not stepped back (told against ``monotonic``, which never steps; logged at
WARNING) and the store's own clock (:meth:`NodeSync.first_read_now`, one round trip on
the polls that read such a row, and at start), where that latest is more than ``skew_s``
(5 s) ahead of this one (found 2026-12-07, sync41); one stamped more than ``skew_s`` ahead
even of that aged from the newest stamp read surely (a store-stamped row's included), or,
with none yet, not taken as heard (found 2026-12-07, start40). That reading keeps the holes
the store's stamp closed (found 2026-12-07, sync42): a step back that put right a clock
running ahead ages first reads an hour too old until restart, steps back of 5 s or less
are not counted, a store clock ahead is trusted, a step before start is caught only by a
store clock apart from this host's; they last as long as such rows do.

A node that went OFFLINE in this table (its goodbye here, or a revocation) while a poll
was reading is not brought back by that poll: what it read may be older than the goodbye (the ``DELETE`` writes the store
first, then the table, so a poll that began after the table changed reads the goodbye);
the next poll reads again, and a node that really registered again comes back then.

What a node reports about its load stays with the replica that got the heartbeat: each
replica's router learns load and latency from its own traffic. But for when its last keyed
request came, as the node said (``nodes.keyed_at``, migration 0025): every replica's router
counts the places the node keeps for keyed requests from it (``route_pools.heard_keyed``),
not only the replica that sent the keyed request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone

from LLM_Mesh.core.beat_stamp import (
    SKEW_S,
    Anchor,
    BeatReading,
    anchored_heard,
    beat_reading,
    first_read_clock,
    newer_anchor,
    stepped_back,
)
from LLM_Mesh.core.check_state import CheckState, reason
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.core.store_heard import HeardRow, keyed_heard
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import CheckRecord, NodeRecord, ReplicaState
from LLM_Mesh.registry.routing import Routing
from LLM_Mesh.registry.snapshot import entry_from_record, stored_pin_known

# the clock a step of the wall clock is told against: Linux's boot-time clock counts a
# suspended machine's sleep as the wall clock does, where ``time.monotonic`` stops (a VM
# resumed read as the wall clock stepping forward, taking back a step back told before:
# review41b); elsewhere the monotonic clock
STEADY: Callable[[], float] = (
    (lambda: time.clock_gettime(time.CLOCK_BOOTTIME))
    if hasattr(time, "CLOCK_BOOTTIME")
    else time.monotonic
)

__all__ = ["NodeSync", "StoreHealthLeases"]

log = logging.getLogger(__name__)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _same_registration(entry: NodeEntry, rec: NodeRecord) -> bool:
    return (
        entry.url == rec.url
        and entry.region == rec.region
        and entry.max_concurrency == rec.max_concurrency
        and entry.max_queue == rec.max_queue
        and entry.version == rec.version
        and set(entry.models) == {str(m.get("id")) for m in rec.models}
        and _same_declaration(entry.keeps_no_prompts, rec.keeps_no_prompts)
    )


def _same_declaration(held: bool | None, told: bool | None) -> bool:
    """Whether the row's declaration (None: not told, a row of before 0029 or of an older
    replica's registration) leaves this replica's as it is: the same, or not told and what
    is held is ``false`` (the stricter: kept, :func:`_kept_declaration`)."""
    return told == held or (told is None and held is False)


def _kept_declaration(held: bool | None, told: bool | None) -> bool | None:
    """The declaration to route by after a row that tells ``told``: a row that does not tell
    keeps a held ``false`` only; a held ``true`` is not kept (the node may have registered
    at an older replica declaring ``false``, which that replica could not write), so the
    node is judged by its engines until it declares again (fail closed, found 2026-12-06,
    keepers34)."""
    if told is None and held is False:
        return False
    return told


class NodeSync(Poller):
    task_name = "llm-mesh-node-sync"

    def __init__(
        self,
        store: ReplicaState,
        table: NodeTable,
        routing: Routing,
        *,
        interval_s: float = 1.0,
        overlap_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        replica_id: str | None = None,
        pins: AddressPins | None = None,
        transport: NodeTransport,
        clock_at: Callable[[float], float] | None = None,
        skew_s: float = SKEW_S,
        monotonic: Callable[[], float] = STEADY,
        clock_rtt_s: float = 2.0,
    ) -> None:
        self.store = store
        self.clock_at = clock_at  # a wall-clock time on the table's clock (None: by its age)
        self.transport = transport  # a stored node whose URL it refuses is not routed
        self.pins = pins  # where stored nodes' certificate pins go
        self.table = table
        self.routing = routing
        self.interval_s = interval_s
        self.overlap_s = overlap_s
        self._wall = wall_clock
        self._since = wall_clock()  # the lifespan loaded every stored node just before
        self.replica_id = replica_id  # heartbeats it recorded are not read back
        self._stamps: dict[str, float] = {}  # node -> the newest heartbeat stamp read
        self.skew_s = skew_s  # a stamp ahead of the wall clock by more: core/beat_stamp.py
        self._anchor: Anchor | None = None  # the newest stamp read surely, and when heard
        self._mono = monotonic  # never steps: tells this wall clock's steps back
        self._offset, self._behind = stepped_back(None, self._since, monotonic())
        self._logged = False  # this wall clock's step back over skew_s logged
        self.clock_rtt_s = clock_rtt_s  # a measure of the store's clock taking longer: not taken
        self._first_now = self._since  # the clock a row never read is aged on, this poll
        # the window on the store's clock (0033): every stamped row at the first poll
        self._store_since = _utc(0)
        # registrations' window on the store's clock (changed42): None until its clock is read
        self._changed_since: datetime | None = None
        self._loaded_at = monotonic()  # when the lifespan loaded every stored node (about)

    async def poll(self) -> int:
        """Apply what changed in the store since the last poll; how many rows were applied."""
        started = self._wall()
        goodbyes = self.table.goodbyes  # a node gone here after this: what is read is older
        since = _utc(self._since - self.overlap_s)
        heard = await self.store.heartbeats_since(
            since, store_since=self._store_since, not_by=self.replica_id
        )
        beats = heard.rows
        # registrations and state changes by the store's clock (its ``changed_at`` stamp),
        # read after the clock the next window counts back from (changed42)
        changed = await self.store.nodes_changed_since(self._changed_window(heard.store_now, since))
        checks = await self.store.health_checks_since(since)
        self._since = started
        if heard.store_now is not None:  # the next windows, on the store's clock
            self._store_since = heard.store_now - timedelta(seconds=self.overlap_s)
            self._changed_since = self._store_since
        now = self._wall()
        self._offset, behind = stepped_back(
            self._offset, now, self._mono(), self._behind, step_s=self.skew_s
        )
        if behind > self.skew_s and not self._logged:
            log.warning(
                "this replica's wall clock stepped back %.1f s (against its monotonic "
                "clock): the heartbeat rows it reads for the first time are aged on the "
                "clock before the step until it restarts",
                behind,
            )  # fmt: skip
        self._behind, self._logged = behind, behind > self.skew_s
        # rows the store did not stamp (core/store_heard.py): the store's clock is read
        first = any(r.heard_age_s is None for r in changed) or self._first_reads(
            [b for b in beats if b.age_s is None]
        )
        store_now = await self._store_now(now) if first else None
        self._first_now = first_read_clock(
            now, behind_s=behind, store_now=store_now, skew_s=self.skew_s
        )
        for rec in changed:
            self._apply_record(rec, goodbyes)
        for beat in sorted(beats, key=self._unsure):
            self._apply_beat(beat, now)  # the sure readings first
        for check in checks:
            self._apply_check(check)
        return len(changed) + len(beats) + len(checks)

    def _changed_window(self, store_now: datetime | None, since: datetime) -> datetime:
        """Where the read of registrations and state changes starts, on the store's clock
        (``changed_at``, stamped by the store): the last poll's read of it less the overlap;
        at the first poll, the clock just read less the time since the nodes were loaded
        (on the clock that never steps) and the overlap; ``since`` (this wall clock's
        window) only where the store tells no clock."""
        if self._changed_since is not None:
            return self._changed_since
        if store_now is None:
            return since
        loaded_s = max(0.0, self._mono() - self._loaded_at)
        return store_now - timedelta(seconds=loaded_s + self.overlap_s)

    async def first_read_now(self) -> datetime:
        """The clock a row read for the first time is aged on now (``core/beat_stamp.py``):
        the stored nodes' rows loaded at start (``snapshot.load_nodes``)."""
        now = self._wall()
        self._offset, behind = stepped_back(
            self._offset, now, self._mono(), self._behind, step_s=self.skew_s
        )
        self._behind = behind
        store_now = await self._store_now(now)
        return _utc(first_read_clock(now, behind_s=behind, store_now=store_now, skew_s=self.skew_s))

    def _first_reads(self, beats: Sequence[HeardRow]) -> bool:
        """Whether a heartbeat row of a node in routing here is read for the first time;
        with a registration or state change read, the polls that measure the store's clock
        (one round trip: at start, and as nodes come and change)."""
        for beat in beats:
            node_id = beat.node_id
            entry = None if node_id in self._stamps else self.table.get(node_id)
            if entry is not None and entry.state is not NodeState.OFFLINE:
                return True
        return False

    async def _store_now(self, now: float) -> float | None:
        """The store's own clock (PostgreSQL's) when this wall clock read ``now``; ``None``
        where it has none (the memory store: this process's), or where the measure failed,
        took longer than ``clock_rtt_s`` or is not finite (``core/beat_stamp.py``)."""
        before = self._wall()
        try:
            theirs = await self.store.server_now()
        except Exception:
            log.warning("node sync: the store's clock could not be read", exc_info=True)
            return None
        after = self._wall()
        if theirs is None or not 0.0 <= after - before <= self.clock_rtt_s:
            return None
        store_now = now + (theirs - (before + after) / 2)
        return store_now if math.isfinite(store_now) else None

    async def load_checks(self) -> int:
        """Every stored check result into the table, at start (after ``load_nodes``): a
        restarted replica keeps what the checks found, since when and why, instead of
        routing a failed node until the next check of it; how many rows were read."""
        checks = await self.store.health_checks_since(_utc(0))
        for check in checks:
            self._apply_check(check)
        return len(checks)

    def _apply_check(self, check: CheckRecord) -> None:
        """A check result from the store (with since when and why, as every replica tells
        the node), unless this table holds a newer one: a row read while this replica
        checked the node itself (its result is written after the whole pass) is older than
        that check, and must not put a node found healthy back out of routing, nor one found
        failed back in."""
        node_id, ok, at = check.node_id, check.ok, check.checked_at.timestamp()
        entry = self.table.get(node_id)
        if entry is None or (entry.checked_at is not None and at < entry.checked_at):
            return
        changed = entry.check_failed == ok
        since = None if check.since is None else min(check.since.timestamp(), at)
        self.table.set_check_result(node_id, ok, at=at, why=check.why, since=since)
        if changed:
            self.routing.sync(node_id)

    def _apply_record(self, rec: NodeRecord, goodbyes: int) -> None:
        entry = self.table.get(rec.node_id)
        state = NodeState.stored(rec.state)
        if state is NodeState.OFFLINE:
            if entry is not None and entry.state is not NodeState.OFFLINE:
                self.table.set_state(rec.node_id, NodeState.OFFLINE)
                self.routing.remove(rec.node_id)
                log.info("node %s went offline (seen through the store)", rec.node_id)
            return
        known = entry is not None and entry.state is not NodeState.OFFLINE
        if (
            known
            and entry is not None
            and _same_registration(entry, rec)
            and (self.pins is None or stored_pin_known(self.pins, rec))
        ):
            return  # this replica's own registration, or one it already has
        if entry is not None and not known and entry.gone > goodbyes:
            return  # it said goodbye here while this poll read: the row may be older
        new = entry_from_record(
            self.table, rec, pins=self.pins, transport=self.transport, clock_at=self.clock_at,
            wall_now=_utc(self._first_now),  # a registration read: a first read (beat_stamp)
        )  # fmt: skip
        if new is None:
            if entry is not None and entry.state is not NodeState.OFFLINE:
                self.table.set_state(rec.node_id, NodeState.OFFLINE)  # not routed with
                self.routing.remove(rec.node_id)  # a URL this replica refuses
            return
        if entry is not None:  # what the store does not keep (or tell), and a fresher heartbeat
            # a row of before 0029, or of an older replica: not told (_kept_declaration)
            new.keeps_no_prompts = _kept_declaration(entry.keeps_no_prompts, rec.keeps_no_prompts)
            new.continuation = entry.continuation
            new.check_failed = entry.check_failed
            new.checked_at = entry.checked_at
            new.check_since, new.check_why = entry.check_since, entry.check_why
            if entry.last_heartbeat is not None and (
                new.last_heartbeat is None or new.last_heartbeat < entry.last_heartbeat
            ):
                new.last_heartbeat = entry.last_heartbeat
        self.routing.upsert(new)
        log.info("node %s learnt from the store (registered at another replica)", rec.node_id)

    def _apply_beat(self, beat: HeardRow, now: float) -> None:
        node_id, at, keyed_at = beat.node_id, beat.at, beat.keyed_at
        entry = self.table.get(node_id)
        if entry is None:
            self._stamps.pop(node_id, None)  # forgotten here (node_forget.py), or not yet
        if entry is None or entry.state is NodeState.OFFLINE:
            return  # unknown here: its registration comes with ``changed``
        stamp = at.timestamp()
        if beat.age_s is not None and beat.store_at is not None:  # on the store's clock
            heard = self._by_store(beat.store_at, beat.age_s)
            self._stamps[node_id] = max(stamp, self._stamps.get(node_id, stamp))
            self._anchor = newer_anchor(self._anchor, stamp, heard)  # a sure reading
            keyed = None if keyed_at is None else keyed_heard(heard, at, keyed_at)
            self._heard(entry, beat.state, heard, keyed)
            return
        anchor = self._anchor
        read_before = self._stamps.get(node_id)
        how = beat_reading(stamp, now, read_before, skew_s=self.skew_s,
                           anchored=anchor is not None, first_now=self._first_now)  # fmt: skip
        # a row never read is aged on the first-read clock: its stamp put on this wall clock
        shift = 0.0 if read_before is not None else self._first_now - now
        if how is BeatReading.SEEN:
            return  # read before (the window's overlap): a wall clock stepped back since
        self._stamps[node_id] = stamp  # would read it as newer, up to heard now
        if how is BeatReading.UNKNOWN:
            return  # never read, ahead of this clock: its age cannot be told (start40)
        if how is BeatReading.ANCHORED and anchor is not None:  # by a sure reading's stamp
            heard = anchored_heard(stamp, anchor, self.table.clock())  # not by this clock
        else:
            heard = self._on_clock(stamp - shift, now)
            self._anchor = newer_anchor(self._anchor, stamp, heard)
        keyed = None if keyed_at is None else self._on_clock(keyed_at.timestamp() - shift, now)
        self._heard(entry, beat.state, heard, keyed)

    def _heard(self, entry: NodeEntry, state: str, heard: float, keyed: float | None) -> None:
        """The node heard at ``heard`` on the table's clock, unless heard later already."""
        if entry.last_heartbeat is not None and heard <= entry.last_heartbeat:
            return
        entry.last_heartbeat = heard
        entry.expired_reported = False
        new_state = NodeState.stored(state)
        if new_state is not NodeState.OFFLINE:
            self.table.set_state(entry.node_id, new_state)
        self.routing.heard(entry.node_id, heard, keyed)

    def _by_store(self, store_at: datetime, age_s: float) -> float:
        """When on the table's clock a row the store stamped ``store_at`` was written,
        ``age_s`` before the store's clock read with it (``core/store_heard.py``): the
        table's clock now less that age; ``clock_at`` says it instead (the in-process
        tests' clock, on which the store's, this process's, is the real one). Never later
        than now."""
        clock = self.table.clock()
        if self.clock_at is not None:
            return min(clock, self.clock_at(store_at.timestamp()))
        return clock - age_s

    def _unsure(self, beat: HeardRow) -> bool:
        """Whether the row is read by an anchor (``core/beat_stamp.py``): after the others
        of its poll, which may give one (a row the store stamped is sure)."""
        if beat.age_s is not None or beat.node_id in self._stamps:
            return False
        return beat.at.timestamp() - self._first_now > self.skew_s

    def _on_clock(self, wall: float, now: float) -> float:
        """The table clock's reading when the wall clock read ``wall`` (``now``: it now),
        never later than now."""
        clock = self.table.clock()
        if self.clock_at is not None:
            return min(clock, self.clock_at(wall))
        return clock - max(0.0, now - wall)


class StoreHealthLeases:
    """The active health pass's per-node leases in the store (``node_checks``).

    :meth:`claim` takes the lease of every node whose lease ran out, for ``lease_s``: this
    replica checks those, the others skip them, so each node is checked once per pass
    across the replicas; a lease whose holder stopped beating (``dead_after_s``, the
    replicas' :class:`~LLM_Mesh.registry.replicas.ReplicaBeat` liveness) is free at once, so
    a replica killed after its claim leaves its nodes unchecked for seconds, not for the
    rest of its lease. :meth:`record` writes the results, which :class:`NodeSync`
    applies on every replica. A failed result frees the node's lease at once, so its
    rechecks (every sweep) go to whichever replica's sweep comes first: a node that only
    one replica cannot reach is found healthy by another within a few sweeps (and that
    replica's own outlier detection keeps it away from the node meanwhile). A store that fails is not a reason to stop checking: the
    claim then gives every node (this replica checks them all, as a lone registry would).
    """

    def __init__(
        self,
        store: ReplicaState,
        holder: str,
        wall_clock: Callable[[], float] = time.time,
        *,
        dead_after_s: float | None = None,
    ) -> None:
        self.store = store
        self.holder = holder  # this replica's id (its beat's row says whether it lives)
        self._wall = wall_clock
        self.dead_after_s = dead_after_s
        self.claim_log = RoundLog(log, "health-check leases", wall_clock=wall_clock)
        self.record_log = RoundLog(log, "health-check results", wall_clock=wall_clock)

    def round_logs(self) -> Iterable[RoundLog]:
        """The claims' and the results' runs (``failed_rounds.HasRoundLogs``)."""
        return (self.claim_log, self.record_log)

    async def claim(self, node_ids: Sequence[str], lease_s: float) -> set[str]:
        now = self._wall()
        dead_after = self.dead_after_s
        alive_since = None if dead_after is None else _utc(now - dead_after)
        try:
            taken = await self.store.claim_health_checks(
                list(node_ids), self.holder, _utc(now), _utc(now + lease_s),
                alive_since=alive_since,
            )  # fmt: skip
        except Exception as exc:
            what = "health-check leases: the store failed"
            self.claim_log.failed(exc, what, "checking every node here")
            return set(node_ids)
        self.claim_log.ok()
        return set(taken)

    @staticmethod
    def _row(node_id: str, state: CheckState, at: float) -> CheckRecord:
        since = None if state.since is None else _utc(min(state.since, at))
        why = None if state.ok else reason(state.why)
        return CheckRecord(node_id, state.ok, _utc(at), since=since, why=why)

    async def record(self, results: Sequence[tuple[str, CheckState]]) -> None:
        """Write each result stamped when its check was made (``CheckState.checked_at``;
        now if not said); the store keeps it only over an older one: a pass that outlived
        its lease does not overwrite another replica's newer result."""
        now = self._wall()
        rows = [
            self._row(node_id, state, now if state.checked_at is None else state.checked_at)
            for node_id, state in results
        ]
        try:
            await self.store.record_health_checks(rows)
        except Exception as exc:
            self.record_log.failed(exc, "health-check results could not be written to the store")
        else:
            self.record_log.ok()
