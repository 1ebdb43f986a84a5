"""What the app takes from its store: the default one, the ledger's engine, replica state.

:func:`replica_state` says whether this process is one replica among many on its store
(the SQL store on PostgreSQL, the memory store; not SQLite); :func:`store_changes` gives the
store polls their cheap check of whether anything they read was written.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.config import Settings
from LLM_Mesh.registry.ledger import EngineOnce, memory_engine
from LLM_Mesh.registry.ports import ReplicaState, Store
from LLM_Mesh.secret_files import make_private_dir

__all__ = ["default_store", "ledger_engine_of", "replica_state", "store_changes"]


def default_store(settings: Settings) -> Store:
    """The store at ``settings.effective_database_url`` (its home made first for the default
    SQLite file)."""
    if settings.database_url is None:
        make_private_dir(settings.home)
    from LLM_Mesh.registry.store import SqlStore  # lazy: SQLAlchemy only when serving

    store: Store = SqlStore(settings.effective_database_url)
    return store


def ledger_engine_of(store: Store) -> Callable[[], Awaitable[AsyncEngine]]:
    """The store's engine for the ledger; a private in-memory one for a store without."""
    if getattr(type(store), "engine", None) is None:
        return EngineOnce(memory_engine)

    async def engine() -> AsyncEngine:
        found = getattr(store, "engine", None)
        if not isinstance(found, AsyncEngine):  # pragma: no cover - wiring bug
            raise TypeError("the store has no SQLAlchemy engine")
        return found

    return engine


_REPLICA_METHODS = (
    "nodes_changed_since", "heartbeats_since", "claim_health_checks", "record_health_checks",
    "health_checks_since", "beat_replica", "live_replicas", "claim_request_key",
    "get_request_key", "finish_request_key", "release_request_key", "purge_request_keys",
    "drop_replicas_before", "extend_request_key",
)  # fmt: skip


def replica_state(store: Store) -> ReplicaState | None:
    """The store as shared replica state, or ``None`` for a store that shares nothing
    (one without the methods, or one that says so: ``SqlStore.shares_replicas`` is false
    on SQLite, where replicas are not supported)."""
    if getattr(store, "shares_replicas", True) is False:
        return None
    if all(callable(getattr(store, name, None)) for name in _REPLICA_METHODS):
        return store  # type: ignore[return-value]
    return None


def store_changes(store: Store, topic: str) -> Callable[[], int | None] | None:
    """The store's cheap check of whether ``topic``'s poll would find anything new
    (``SqlStore.poll_version``: a counter its writes move), if it has one."""
    check = getattr(store, "poll_version", None)
    if not callable(check):
        return None
    return functools.partial(check, topic)
