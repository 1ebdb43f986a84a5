"""The in-memory store's side of what replicas share (``ReplicaState``), for tests.

Same answers as :class:`~LLM_Mesh.registry.store_replicas.SqlReplicaState`, kept in
dicts; several apps given one :class:`~LLM_Mesh.registry.memory_store.MemoryStore` behave
as replicas on one database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from LLM_Mesh.core.check_state import reason
from LLM_Mesh.core.rewards import heartbeat_credit_ms
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.core.store_heard import HeardRow, HeardRows, store_age, store_stamp
from LLM_Mesh.registry.ports import (
    CheckRecord,
    IdempotencyRecord,
    NodeKeyRecord,
    NodeRecord,
    ReplicaRecord,
)

__all__ = ["MemoryReplicaState"]


class MemoryReplicaState:
    """Mixed into ``MemoryStore``, which keeps ``nodes`` and calls :meth:`_changed`."""

    nodes: dict[str, NodeRecord]

    def __init__(self) -> None:
        self.changed_at: dict[str, datetime] = {}
        # node id -> (lease holder, lease until, last result)
        self.checks: dict[str, tuple[str, datetime, CheckRecord | None]] = {}
        self.replicas: dict[str, ReplicaRecord] = {}
        self.request_keys: dict[str, IdempotencyRecord] = {}
        self.heard_by: dict[str, str | None] = {}
        self.keyed_at: dict[str, datetime | None] = {}  # nodes.keyed_at
        # the store's own clock (migration 0033): this process's, as SQLite's is its host's
        self.store_clock: Callable[[], float] = time.time
        self.heard_store_of: dict[str, datetime | None] = {}  # nodes.heard_store_of

    def _store_now(self) -> datetime:
        return datetime.fromtimestamp(self.store_clock(), timezone.utc)

    def _stamp(self, rec: NodeRecord) -> datetime | None:
        """``rec``'s store stamp, told only with the heartbeat it was written with (as SQL's
        ``heard_store_of``: a ``last_heartbeat_at`` set otherwise leaves it untold)."""
        of = self.heard_store_of.get(rec.node_id)
        return store_stamp(rec.heard_store_at, of, rec.last_heartbeat_at)

    def _read(self, rec: NodeRecord, store_now: datetime) -> NodeRecord:
        """A copy of ``rec`` aged on the store's clock at ``store_now`` (as SQL reads it)."""
        stamp = self._stamp(rec)
        return replace(rec, heard_store_at=stamp, heard_age_s=store_age(store_now, stamp))

    def _heard(self, rec: NodeRecord, at: datetime | None, age_s: float | None = 0.0) -> None:
        """``rec``'s last heartbeat is ``at``, stamped on the store's clock ``age_s`` ago
        (0033; None: not told, as SQL)."""
        rec.last_heartbeat_at = at
        rec.heard_age_s = None
        self.heard_store_of[rec.node_id] = at
        rec.heard_store_at = (
            None if at is None or age_s is None
            else self._store_now() - timedelta(seconds=max(0.0, age_s))
        )  # fmt: skip

    def _changed(self, node_id: str, at: datetime) -> None:
        self.changed_at[node_id] = at
        self.heard_by.pop(node_id, None)

    async def nodes_changed_since(self, at: datetime) -> list[NodeRecord]:
        now = self._store_now()
        return [
            self._read(rec, now)
            for node_id, rec in self.nodes.items()
            if self.changed_at.get(node_id) is not None and self.changed_at[node_id] >= at
        ]

    async def server_now(self) -> float | None:
        return None  # this process's clock: the replicas on it share it

    async def heartbeats_since(
        self, at: datetime, *, store_since: datetime | None = None, not_by: str | None = None
    ) -> HeardRows:
        now = self._store_now()

        def heard(r: NodeRecord) -> bool:
            if r.last_heartbeat_at is None:
                return False
            stamp = self._stamp(r)  # by the store's clock where told, as SQL
            by_store = store_since is not None and stamp is not None and stamp >= store_since
            return r.last_heartbeat_at >= at or by_store

        rows = [
            HeardRow(r.node_id, r.state, r.last_heartbeat_at, self.keyed_at.get(r.node_id),
                     self._stamp(r), store_age(now, self._stamp(r)))
            for r in self.nodes.values()
            if r.last_heartbeat_at is not None and heard(r)
            and (not_by is None or self.heard_by.get(r.node_id) != not_by)
        ]  # fmt: skip
        return HeardRows(rows, now)

    async def advance_node_seqs(self, items: Sequence[tuple[str, int]]) -> dict[str, str]:
        advance = self.advance_node_seq  # type: ignore[attr-defined]
        return {node_id: (await advance(node_id, seq)).value for node_id, seq in items}

    async def get_node_keys(self, node_ids: Sequence[str]) -> dict[str, NodeKeyRecord]:
        get = self.get_node_key  # type: ignore[attr-defined]
        out = {}
        for node_id in node_ids:
            rec = await get(node_id)
            if rec is not None:
                out[node_id] = rec
        return out

    async def touch_heartbeats(
        self,
        items: Sequence[tuple[str, datetime, str, int]],
        heard_by: str | None = None,
        *,
        keyed: Mapping[str, datetime] | None = None,
        waited: Mapping[str, float] | None = None,
    ) -> None:
        said, wait = keyed or {}, waited or {}
        for node_id, at, state, lim in items:
            rec = self.nodes.get(node_id)
            if rec is not None and rec.state != NodeState.OFFLINE.value:  # gone: as SQL
                last = rec.last_heartbeat_at
                rec.healthy_ms += heartbeat_credit_ms(
                    was_online=rec.state == NodeState.ONLINE.value,
                    since_ms=None if last is None else round(last.timestamp() * 1000),
                    at_ms=round(at.timestamp() * 1000),
                    limit_ms=lim,
                )
                self._heard(rec, at, wait.get(node_id, 0.0))  # stamped less the wait
                rec.state = state
                self.heard_by[node_id] = heard_by
                self.keyed_at[node_id] = said.get(node_id)

    async def claim_health_checks(
        self,
        node_ids: Sequence[str],
        holder: str,
        now: datetime,
        until: datetime,
        *,
        alive_since: datetime | None = None,
    ) -> list[str]:
        def dead(other: str) -> bool:
            rec = self.replicas.get(other)
            return alive_since is not None and (rec is None or rec.seen_at < alive_since)

        taken: list[str] = []
        for node_id in sorted(set(node_ids)):
            old = self.checks.get(node_id)
            if old is None or old[1] <= now or old[0] == holder or dead(old[0]):
                self.checks[node_id] = (holder, until, None if old is None else old[2])
                taken.append(node_id)
        return taken

    async def record_health_checks(self, results: Sequence[CheckRecord]) -> None:
        for rec in results:
            old = self.checks.get(rec.node_id)
            if old is None:
                continue
            last = old[2]
            if last is not None and last.checked_at >= rec.checked_at:
                continue  # only over an older result, as in SQL
            since = rec.since or rec.checked_at
            if last is not None and last.ok == rec.ok and last.since is not None:
                since = last.since  # the same result: its since stays, as in SQL
            why = None if rec.ok else reason(rec.why)
            until = old[1] if rec.ok else rec.checked_at  # a failed node's recheck is free
            self.checks[rec.node_id] = (old[0], until, replace(rec, since=since, why=why))

    async def health_checks_since(self, at: datetime) -> list[CheckRecord]:
        return [
            last
            for _, _, last in self.checks.values()
            if last is not None and last.checked_at >= at
        ]

    async def beat_replica(self, rec: ReplicaRecord) -> None:
        old = self.replicas.get(rec.replica_id)
        started = rec.started_at if old is None else old.started_at
        self.replicas[rec.replica_id] = replace(rec, started_at=started, demand=dict(rec.demand))

    async def live_replicas(self, since: datetime) -> list[ReplicaRecord]:
        return [replace(r) for _, r in sorted(self.replicas.items()) if r.seen_at >= since]

    async def drop_replicas_before(self, before: datetime) -> int:
        gone = [k for k, r in self.replicas.items() if r.seen_at < before]
        for k in gone:
            del self.replicas[k]
        return len(gone)

    async def claim_request_key(
        self,
        key_hash: str,
        owner: str,
        stream: bool,
        now: datetime,
        expires_at: datetime,
        *,
        claim: str | None = None,
        supersede_done: bool = False,
    ) -> IdempotencyRecord | None:
        old = self.request_keys.get(key_hash)
        if (
            old is not None
            and old.expires_at > now
            and not (supersede_done and old.state == "done")
        ):
            return replace(old)
        self.request_keys[key_hash] = IdempotencyRecord(
            key_hash, owner, stream, "running", now, expires_at, claim=claim
        )
        return None

    async def get_request_key(self, key_hash: str) -> IdempotencyRecord | None:
        rec = self.request_keys.get(key_hash)
        return None if rec is None else replace(rec)

    async def finish_request_key(self, rec: IdempotencyRecord) -> bool:
        old = self.request_keys.get(rec.key_hash)
        if old is None or old.owner != rec.owner or old.state != "running":
            return False
        if rec.claim is not None and old.claim != rec.claim:
            return False
        self.request_keys[rec.key_hash] = replace(rec, state="done", created_at=old.created_at)
        return True

    async def release_request_key(
        self, key_hash: str, owner: str, claim: str | None = None
    ) -> None:
        old = self.request_keys.get(key_hash)
        if old is None or old.owner != owner or old.state != "running":
            return
        if claim is None or old.claim == claim:  # that claim's row only
            del self.request_keys[key_hash]

    async def extend_request_key(self, key_hash: str, claim: str, expires_at: datetime) -> bool:
        old = self.request_keys.get(key_hash)
        if old is None or old.claim != claim or old.state != "running":
            return False
        old.expires_at = expires_at
        return True

    async def keep_request_keys(self, records: list[IdempotencyRecord], now: datetime) -> None:
        await self.purge_request_keys(now)
        for rec in records:
            self.request_keys[rec.key_hash] = replace(rec)

    async def purge_request_keys(self, now: datetime) -> int:
        gone = [k for k, r in self.request_keys.items() if r.expires_at <= now]
        for k in gone:
            del self.request_keys[k]
        return len(gone)
