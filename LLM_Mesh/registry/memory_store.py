"""An in-memory :class:`~LLM_Mesh.registry.ports.Store`, for tests and benchmarks.

Same behaviour as the SQL store, kept in dicts; nothing survives the process.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from LLM_Mesh.registry.ports import NodeRecord, RequestRecord


class MemoryStore:
    """Nodes and requests in memory. ``requests`` holds every recorded request."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self.requests: list[RequestRecord] = []
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def upsert_node(self, rec: NodeRecord) -> None:
        old = self.nodes.get(rec.node_id)
        if old is not None:
            # keep when it first registered and what it has served so far
            rec = replace(
                rec,
                registered_at=old.registered_at,
                requests=max(rec.requests, old.requests),
                failures=max(rec.failures, old.failures),
                tokens_generated=max(rec.tokens_generated, old.tokens_generated),
            )
        self.nodes[rec.node_id] = replace(rec)

    async def touch_heartbeat(self, node_id: str, at: datetime, state: str) -> bool:
        rec = self.nodes.get(node_id)
        if rec is None:
            return False
        rec.last_heartbeat_at = at
        rec.state = state
        return True

    async def set_node_state(self, node_id: str, state: str) -> bool:
        rec = self.nodes.get(node_id)
        if rec is None:
            return False
        rec.state = state
        return True

    async def get_node(self, node_id: str) -> NodeRecord | None:
        rec = self.nodes.get(node_id)
        return None if rec is None else replace(rec)

    async def list_nodes(self) -> list[NodeRecord]:
        return [replace(r) for r in self.nodes.values()]

    async def record_requests(self, recs: list[RequestRecord]) -> None:
        self.requests.extend(recs)

    async def request_stats(self) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = {}
        for r in self.requests:
            if r.node_id is None:
                continue
            s = stats.setdefault(r.node_id, {"requests": 0, "failures": 0, "tokens": 0})
            s["requests"] += 1
            if r.outcome == "error":
                s["failures"] += 1
            s["tokens"] += r.completion_tokens
        return stats
