"""What the registry needs from its store: the records and the ``Store`` protocol.

The SQL store (``LLM_Mesh.registry.store.SqlStore``) and the in-memory one
(``LLM_Mesh.registry.memory_store.MemoryStore``) both implement :class:`Store`;
the registry codes against the protocol only. Timestamps are timezone-aware UTC
``datetime`` values (wall clock), never monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass
class NodeRecord:
    """One registered node as stored (registration, state, last heartbeat, counters)."""

    node_id: str
    url: str
    region: str | None
    models: list[dict[str, Any]]
    hardware: dict[str, Any]
    max_concurrency: int
    max_queue: int
    version: str
    state: str
    registered_at: datetime
    last_heartbeat_at: datetime | None
    requests: int = 0
    failures: int = 0
    tokens_generated: int = 0


@dataclass
class RequestRecord:
    """One finished request (never the prompt or the answer text)."""

    request_id: str
    node_id: str | None
    model: str
    stream: bool
    outcome: str  # "ok" | "error" | "cancelled"
    error_code: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float | None
    ttft_ms: float | None
    cost: float
    created_at: datetime


class Store(Protocol):
    """Persistence of nodes and requests; every method is a coroutine."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def upsert_node(self, rec: NodeRecord) -> None:
        """Insert or update the node ``rec.node_id``."""
        ...

    async def touch_heartbeat(self, node_id: str, at: datetime, state: str) -> bool:
        """Record a heartbeat; ``False`` when the node is unknown."""
        ...

    async def set_node_state(self, node_id: str, state: str) -> bool:
        """Set the node's state; ``False`` when the node is unknown."""
        ...

    async def get_node(self, node_id: str) -> NodeRecord | None:
        """The stored node, or ``None``."""
        ...

    async def list_nodes(self) -> list[NodeRecord]:
        """Every stored node."""
        ...

    async def record_requests(self, recs: list[RequestRecord]) -> None:
        """Append finished requests (one batch)."""
        ...

    async def request_stats(self) -> dict[str, dict[str, int]]:
        """Per node id: ``{"requests", "failures", "tokens"}`` over all recorded requests."""
        ...
