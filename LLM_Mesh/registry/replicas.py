"""This registry replica among the others on one store: its id, its beat, who is alive.

Every replica gets a random ``replica_id`` at start. :class:`ReplicaBeat` (a
:class:`~LLM_Mesh.registry.poller.Poller`, every ``interval_s``) writes the replica's row
(``registry_replicas``: ``seen_at`` and this replica's demand counters) and reads the rows
of every replica seen within ``dead_after_s``: that is who is alive
(:meth:`ReplicaBeat.alive`, used by the shared idempotency keys to tell a duplicate
waiting on a dead replica's request to stop waiting) and whose demand ``GET /mesh/demand``
adds to its own (:meth:`ReplicaBeat.others_demand`: records older than ``dead_after_s`` by
now are left out, even while the beat cannot read the store; ``on_beat`` hears each
successful beat: the stream floor reads them, ``Routing.refresh_shares``). Every ``purge_every_s`` it also
deletes expired idempotency keys and rows of replicas gone for an hour.

Wall-clock times of different replicas are compared, so their clocks must agree within
a second or two (NTP), as node signatures already need (±120 s).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from LLM_Mesh import __version__
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import ReplicaRecord, ReplicaState

__all__ = ["PUBLISHED_NODES", "ReplicaBeat", "demand_snapshot", "new_replica_id"]

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    return "replica-" + uuid.uuid4().hex[:16]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


PUBLISHED_NODES = 1000
"""At most this many nodes' in-flight counts in a replica's published demand (the busiest)."""


def demand_snapshot(
    in_flight: dict[str, int],
    waiting: dict[str, int],
    refused: dict[str, dict[str, int]],
    nodes: tuple[dict[str, int], bool] | None = None,
) -> dict[str, Any]:
    """What a replica publishes of its demand counters (plain JSON): per model, and (``nodes``:
    ``Router.in_flight_by_node``) its requests in flight per node, for the nodes with any,
    with ``nodes_truncated`` when some were left out (``core/rewards.explained_load_credit_s``
    reads them: load another replica sent a node)."""
    snap: dict[str, Any] = {"in_flight": dict(in_flight), "waiting": dict(waiting)}
    snap["refused"] = refused
    if nodes is not None:
        snap["nodes"] = dict(nodes[0])
        snap["nodes_truncated"] = nodes[1]
    return snap


class ReplicaBeat(Poller):
    task_name = "llm-mesh-replica-beat"

    def __init__(
        self,
        store: ReplicaState,
        *,
        replica_id: str | None = None,
        demand: Callable[[], dict[str, Any]] = dict,
        interval_s: float = 1.0,
        dead_after_s: float = 6.0,
        purge_every_s: float = 60.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0 or dead_after_s <= interval_s:
            raise ValueError("need 0 < interval_s < dead_after_s")
        self.store = store
        self.replica_id = replica_id or new_replica_id()
        self.interval_s = interval_s
        self.dead_after_s = dead_after_s
        self.purge_every_s = purge_every_s
        self._demand = demand
        self._wall = wall_clock
        self.started_at = _utc(wall_clock())
        self.live: dict[str, ReplicaRecord] = {}  # other replicas alive at the last beat
        self.on_beat: Callable[[], None] | None = None  # after each successful beat
        self._next_purge = wall_clock() + purge_every_s

    def alive(self, replica_id: str, claimed_at: datetime | None = None) -> bool:
        """Whether ``replica_id`` is alive: this one, one seen within ``dead_after_s`` at the
        last beat, or one that claimed something so lately it may not have beaten yet."""
        if replica_id == self.replica_id:
            return True
        rec = self.live.get(replica_id)
        now = self._wall()
        if rec is not None and now - rec.seen_at.timestamp() < self.dead_after_s:
            return True
        return claimed_at is not None and now - claimed_at.timestamp() < self.dead_after_s

    def others_demand(self) -> list[dict[str, Any]]:
        """The demand counters other live replicas published (records seen within
        ``dead_after_s`` of now: a stale one, kept while the store cannot be read, is not)."""
        now = self._wall()
        return [
            r.demand for r in self.live.values() if now - r.seen_at.timestamp() < self.dead_after_s
        ]

    async def poll(self) -> int:
        """Beat once; how many other replicas are alive."""
        now = self._wall()
        rec = ReplicaRecord(
            self.replica_id, self.started_at, _utc(now), __version__, self._demand()
        )
        await self.store.beat_replica(rec)
        seen = await self.store.live_replicas(_utc(now - self.dead_after_s))
        self.live = {r.replica_id: r for r in seen if r.replica_id != self.replica_id}
        if self.on_beat is not None:
            self.on_beat()
        if now >= self._next_purge:
            self._next_purge = now + self.purge_every_s
            purged = await self.store.purge_request_keys(_utc(now))
            gone = await self.store.drop_replicas_before(_utc(now) - timedelta(hours=1))
            if purged or gone:
                log.debug("purged %d expired idempotency keys, %d old replica rows", purged, gone)
        return len(self.live)
