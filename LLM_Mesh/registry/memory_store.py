"""An in-memory :class:`~LLM_Mesh.registry.ports.Store`, for tests and benchmarks.

Same behaviour as the SQL store, kept in dicts; nothing survives the process.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from LLM_Mesh.core.liveness import node_address
from LLM_Mesh.core.retention import node_quiet, prune_bounds
from LLM_Mesh.core.rewards import ModelStats, heartbeat_credit_ms
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.core.store_heard import heard_within
from LLM_Mesh.registry.memory_replicas import MemoryReplicaState
from LLM_Mesh.registry.memory_usage_audit import MemoryUsageAudit
from LLM_Mesh.registry.ports import (
    FAILURE_OUTCOMES,
    AddressTaken,
    ApiKeyRecord,
    NodeKeyRecord,
    NodeRecord,
    OperatorRecord,
    RequestRecord,
    SeqResult,
)
from LLM_Mesh.registry.ports_canary import CanaryRecord, VerifierMark
from LLM_Mesh.registry.store_canary_departures import MemoryCanaryDepartures
from LLM_Mesh.registry.store_cut_receipts import MemoryCutReceipts
from LLM_Mesh.registry.store_unpaid import MemoryUnpaid


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


class MemoryStore(
    MemoryReplicaState, MemoryUsageAudit, MemoryCanaryDepartures, MemoryCutReceipts, MemoryUnpaid
):
    """Nodes and requests in memory. ``requests`` holds every recorded request; recording
    one adds it to its node's counters (as the SQL store does)."""

    def __init__(self) -> None:
        super().__init__()
        MemoryUsageAudit.__init__(self)  # (MemoryReplicaState's does not chain)
        MemoryCanaryDepartures.__init__(self)
        MemoryCutReceipts.__init__(self)
        MemoryUnpaid.__init__(self)
        self.nodes: dict[str, NodeRecord] = {}
        # node ids by the address (host, port) each was last stored at: a registration's
        # address check reads those only, not the fleet (as the SQL store's index, 0023)
        self._at_address: dict[tuple[str, int], set[str]] = {}
        self.requests: list[RequestRecord] = []
        self.operators: dict[str, OperatorRecord] = {}
        self.node_keys: dict[str, NodeKeyRecord] = {}
        self.admin_key_hash: str | None = None
        self.api_keys: dict[str, ApiKeyRecord] = {}
        self.verifiers: dict[str, VerifierMark] = {}
        self.canary: dict[tuple[str, str], CanaryRecord] = {}
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def upsert_node(
        self,
        rec: NodeRecord,
        *,
        address_live_since: datetime | None = None,
        address_live_s: float | None = None,
    ) -> bool:
        key = self.node_keys.get(rec.node_id)
        if key is not None and key.revoked_at is not None:
            return False  # revoked since its key was claimed: as SQL
        address = node_address(rec.url)
        if address_live_since is not None and address is not None:
            for other_id in self._at_address.get(address, ()):  # a live one's: as SQL
                other = self.nodes.get(other_id)
                if (
                    other is not None
                    and other.node_id != rec.node_id
                    and other.state != NodeState.OFFLINE.value
                    and heard_within(  # on the store's clock where stamped (forget42)
                        self._stamp(other),
                        self._store_now(),
                        other.last_heartbeat_at,
                        address_live_since,
                        address_live_s,
                    )
                    and node_address(other.url) == address
                    and not self._check_failed(other.node_id)
                ):
                    raise AddressTaken(other.node_id)
        old = self.nodes.get(rec.node_id)
        if old is not None:
            # keep when it first registered and what it has served so far
            rec = replace(
                rec,
                registered_at=old.registered_at,
                requests=max(rec.requests, old.requests),
                failures=max(rec.failures, old.failures),
                tokens_generated=max(rec.tokens_generated, old.tokens_generated),
                healthy_ms=max(rec.healthy_ms, old.healthy_ms),
            )
        self.nodes[rec.node_id] = replace(rec)
        self._heard(self.nodes[rec.node_id], rec.last_heartbeat_at, rec.heard_age_s)  # 0033
        self._index_address(rec.node_id, None if old is None else old.url, address)
        self._changed(rec.node_id, self._store_now())
        return True

    def _index_address(
        self, node_id: str, old_url: str | None, address: tuple[str, int] | None
    ) -> None:
        """``node_id`` now stored at ``address``, no longer at ``old_url``'s."""
        before = None if old_url is None else node_address(old_url)
        if before == address:
            return
        if before is not None and (ids := self._at_address.get(before)) is not None:
            ids.discard(node_id)
            if not ids:
                del self._at_address[before]
        if address is not None:
            self._at_address.setdefault(address, set()).add(node_id)

    def _check_failed(self, node_id: str) -> bool:
        held = self.checks.get(node_id)
        return held is not None and held[2] is not None and held[2].ok is False

    async def touch_heartbeat(
        self,
        node_id: str,
        at: datetime,
        state: str,
        *,
        credit_limit_s: float = 0.0,
        keyed_at: datetime | None = None,
    ) -> bool:
        rec = self.nodes.get(node_id)
        if rec is None or rec.state == NodeState.OFFLINE.value:
            return False  # gone (goodbye, revoked): only registering brings it back
        last = rec.last_heartbeat_at
        rec.healthy_ms += heartbeat_credit_ms(
            was_online=rec.state == NodeState.ONLINE.value,
            since_ms=None if last is None else _ms(last),
            at_ms=_ms(at),
            limit_ms=int(credit_limit_s * 1000),
        )
        self._heard(rec, at)
        rec.state = state
        self.keyed_at[node_id] = keyed_at  # nodes.keyed_at (memory_replicas.py)
        return True

    async def set_node_state(self, node_id: str, state: str) -> bool:
        rec = self.nodes.get(node_id)
        if rec is None:
            return False
        rec.state = state
        self._changed(node_id, self._store_now())
        return True

    async def get_node(self, node_id: str) -> NodeRecord | None:
        rec = self.nodes.get(node_id)
        return None if rec is None else self._read(rec, self._store_now())

    async def list_nodes(self) -> list[NodeRecord]:
        now = self._store_now()  # each aged on the store's clock (migration 0033)
        return [self._read(r, now) for r in self.nodes.values()]

    async def prune_nodes(self, before: datetime, limit: int) -> int:
        """At most ``limit`` node rows quiet since before ``before`` (``core/retention
        .node_quiet``) deleted with their health checks and canary tallies, as
        ``node_retention.prune_nodes`` does in SQL; their keys, revocations, quarantines and reward marks stay."""
        prune_bounds(before, limit)
        changed = self.changed_at.get
        quiet = (  # by the row's store stamp where it has one (0033), as SQL
            r for r in self.nodes.values()
            if node_quiet(before, r.registered_at, r.last_heartbeat_at, changed(r.node_id),
                          stamp=self._stamp(r))
        )  # fmt: skip
        gone = list(itertools.islice(quiet, limit))
        for r in gone:
            del self.nodes[r.node_id]
            self._index_address(r.node_id, r.url, None)
            self.checks.pop(r.node_id, None)
            self.changed_at.pop(r.node_id, None)
            self.keyed_at.pop(r.node_id, None)
            self.heard_by.pop(r.node_id, None)
            self.heard_store_of.pop(r.node_id, None)
        ids = {r.node_id for r in gone}  # and their canary tallies, as on SQL (canarystore35)
        for k in [k for k in self.canary_departures if k[0] in ids] if ids else ():
            del self.canary_departures[k]
        return len(gone)

    async def record_requests(self, recs: list[RequestRecord]) -> None:
        self.requests.extend(recs)
        for r in recs:  # the node counters, as the SQL store bumps them in the batch
            node = None if r.node_id is None else self.nodes.get(r.node_id)
            if node is None:
                continue
            node.requests += 1
            node.failures += r.outcome in FAILURE_OUTCOMES
            node.tokens_generated += r.completion_tokens

    async def request_totals(
        self, since: datetime, until: datetime
    ) -> dict[str, dict[str, ModelStats]]:
        acc: dict[tuple[str, str], list[float]] = {}
        for r in self.requests:
            if r.node_id is None or not since <= r.created_at < until:
                continue
            a = acc.setdefault((r.node_id, r.model), [0, 0, 0, 0.0])
            if r.outcome == "ok":
                a[0] += 1
                a[2] += r.completion_tokens
                a[3] += r.latency_ms or 0.0
            elif r.outcome == "error":
                a[1] += 1
        out: dict[str, dict[str, ModelStats]] = {}
        for (node_id, model), (ok, failed, tokens, ms) in acc.items():
            out.setdefault(node_id, {})[model] = ModelStats(int(ok), int(failed), int(tokens), ms)
        return out

    async def prune_requests(self, before: datetime, limit: int) -> int:
        if limit < 1:
            raise ValueError("limit is at least 1")
        gone = 0
        kept: list[RequestRecord] = []
        for r in self.requests:
            if gone < limit and r.created_at < before:
                gone += 1
            else:
                kept.append(r)
        self.requests = kept
        return gone

    # -- credentials ---------------------------------------------------------------

    async def add_operator(
        self, name: str, token_hash: str, at: datetime, *, replace: bool = False
    ) -> bool:
        if not name or len(name) > 128:
            raise ValueError("an operator name is 1 to 128 characters")
        if name in self.operators and not replace:
            return False
        self.operators[name] = OperatorRecord(name, token_hash, at)
        return True

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        for op in self.operators.values():
            if op.token_hash == token_hash:
                return replace(op)
        return None

    async def list_operators(self) -> list[OperatorRecord]:
        return [
            replace(
                op,
                nodes=sorted(k.node_id for k in self.node_keys.values() if k.operator == op.name),
            )
            for _, op in sorted(self.operators.items())
        ]

    async def operator_node_keys(self, name: str) -> dict[str, bool]:
        keys = sorted((k.node_id, k) for k in self.node_keys.values() if k.operator == name)
        return {node_id: k.revoked_at is not None for node_id, k in keys}

    async def set_operator_uptime_nodes(self, name: str, nodes: int | None) -> bool:
        if nodes is not None and nodes < 0:
            raise ValueError("an uptime cap is a number of nodes, 0 or more")
        op = self.operators.get(name)
        if op is None:
            return False
        op.uptime_nodes = nodes
        return True

    async def revoke_operator(self, name: str, at: datetime) -> list[str] | None:
        op = self.operators.get(name)
        if op is None:
            return None
        op.revoked_at = op.revoked_at or at
        ids = sorted(k.node_id for k in self.node_keys.values() if k.operator == name)
        for node_id in ids:
            await self.revoke_node(node_id, at)
        return ids

    async def claim_node_key(
        self, node_id: str, public_key: str, operator: str, seq: int, at: datetime
    ) -> SeqResult:
        key = self.node_keys.get(node_id)
        op = self.operators.get(operator)
        if op is not None and op.revoked_at is not None:  # revoked since it was read
            return SeqResult.REVOKED
        if key is None:
            self.node_keys[node_id] = NodeKeyRecord(node_id, public_key, operator, seq, at)
            return SeqResult.OK
        if key.public_key != public_key:
            return SeqResult.KEY_MISMATCH
        if key.revoked_at is None and key.operator != operator:
            return SeqResult.OTHER_OPERATOR  # a key is its first operator's
        return await self.advance_node_seq(node_id, seq)

    async def advance_node_seq(self, node_id: str, seq: int) -> SeqResult:
        key = self.node_keys.get(node_id)
        if key is None:
            return SeqResult.UNKNOWN
        if key.revoked_at is not None:
            return SeqResult.REVOKED
        if seq <= key.last_seq:
            return SeqResult.STALE
        key.last_seq = seq
        return SeqResult.OK

    async def get_node_key(self, node_id: str) -> NodeKeyRecord | None:
        key = self.node_keys.get(node_id)
        return None if key is None else replace(key)

    async def revoke_node(self, node_id: str, at: datetime) -> bool:
        key = self.node_keys.get(node_id)
        if key is None:
            return False
        key.revoked_at = key.revoked_at or at
        await self.set_node_state(node_id, NodeState.OFFLINE.value)
        return True

    async def revoked_nodes_since(self, at: datetime) -> list[str]:
        return sorted(
            k.node_id
            for k in self.node_keys.values()
            if k.revoked_at is not None and k.revoked_at >= at
        )

    async def get_admin_key_hash(self) -> str | None:
        return self.admin_key_hash

    async def set_admin_key_hash(self, key_hash: str, at: datetime, *, replace: bool) -> bool:
        if self.admin_key_hash is not None and not replace:
            return False
        self.admin_key_hash = key_hash
        return True

    # -- client API keys -------------------------------------------------------------------

    async def add_api_key(self, rec: ApiKeyRecord) -> bool:
        for k in self.api_keys.values():
            if k.key_hash == rec.key_hash or (rec.name is not None and k.name == rec.name):
                return False
        if rec.key_id in self.api_keys:
            return False
        self.api_keys[rec.key_id] = replace(rec, avoid_regions=sorted(rec.avoid_regions))
        return True

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        for k in self.api_keys.values():
            if k.key_hash == key_hash:
                return replace(k)
        return None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return [
            replace(k)
            for k in sorted(self.api_keys.values(), key=lambda k: (k.created_at, k.key_id))
        ]

    async def revoke_api_key(self, id_or_name: str, at: datetime) -> ApiKeyRecord | None:
        for k in self.api_keys.values():
            if id_or_name in (k.key_id, k.name):
                if k.revoked_at is None:
                    k.revoked_at = at
                return replace(k)
        return None

    async def revoked_api_keys_since(self, at: datetime) -> list[str]:
        return sorted(
            k.key_id
            for k in self.api_keys.values()
            if k.revoked_at is not None and k.revoked_at >= at
        )

    # -- quality control (canary verifiers and verdicts) ------------------------------

    async def trust_verifier(self, node_id: str, models: Mapping[str, str], at: datetime) -> bool:
        old = self.verifiers.get(node_id) or VerifierMark(node_id)
        new = {m: s.lower() for m, s in models.items() if old.models.get(m) != s.lower()}
        if not new:
            return False
        marked = {**old.marked, **dict.fromkeys(new, at)}
        self.verifiers[node_id] = VerifierMark(
            node_id, {**old.models, **new}, max(marked.values()), marked
        )
        return True

    async def untrust_verifier(self, node_id: str, models: Sequence[str] = ()) -> bool:
        old = self.verifiers.get(node_id)
        if old is None or (models and not set(models) & set(old.models)):
            return False
        kept = {m: s for m, s in old.models.items() if models and m not in models}
        if kept:
            marked = {m: old.marked[m] for m in kept}
            self.verifiers[node_id] = VerifierMark(node_id, kept, max(marked.values()), marked)
        else:  # its last model unmarked: a verifier no more
            del self.verifiers[node_id]
        return True

    async def list_verifiers(self) -> list[VerifierMark]:
        return [
            replace(v, models=dict(v.models), marked=dict(v.marked))
            for _, v in sorted(self.verifiers.items())
        ]

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
        rec = self.canary.setdefault((node_id, model), CanaryRecord(node_id, model))
        rec.updated_at = at
        if probe:  # (not the usage audit's quarantine)
            rec.last_probe_at = at
        if ok and probe:
            rec.passed += 1
        elif not ok:
            rec.failed += int(probe)
            if rec.quarantined_at is None:
                rec.quarantined_at, rec.reason = at, (reason or "failed canary")[:512]
        return replace(rec)

    async def clear_quarantine(self, node_id: str, at: datetime) -> list[str]:
        out = []
        for (nid, model), rec in self.canary.items():
            if nid == node_id and rec.quarantined_at is not None:
                rec.quarantined_at, rec.reason, rec.updated_at = None, None, at
                out.append(model)
        return sorted(out)

    async def quarantined_nodes_of(self, operator: str) -> list[str]:
        mine = {k.node_id for k in self.node_keys.values() if k.operator == operator}
        return sorted({r.node_id for r in self.canary.values() if r.quarantined} & mine)

    async def held_nodes(self) -> list[str]:
        quarantined = {r.node_id for r in self.canary.values() if r.quarantined}
        operators = {k.operator for k in self.node_keys.values() if k.node_id in quarantined}
        siblings = {k.node_id for k in self.node_keys.values() if k.operator in operators}
        return sorted(quarantined | siblings)

    async def canary_records(self, since: datetime | None = None) -> list[CanaryRecord]:
        return [
            replace(r)
            for _, r in sorted(self.canary.items())
            if since is None or (r.updated_at is not None and r.updated_at >= since)
        ]
