"""Nodes gone for long leave the node table (and so every listing): ids churned for free
must not grow the gateway's memory and ``GET /mesh/nodes`` without end.

A node that said goodbye, was revoked, or fell silent stays in the table, shown OFFLINE or
unhealthy, for ``settings.node_forget_s`` (24 h) after it was last heard (or, never heard,
put in the table): its operator and the admin see it leave. Past that (and never less than
``core/liveness.FORGET_FLOOR_S`` past the heartbeat expiry) :func:`forget_gone`, run after
each health pass (``app._upkeep``), drops it from the table, the router, the gateway's
per-node session key and the node key cache; :func:`~LLM_Mesh.registry.snapshot.load_nodes`
leaves such rows out at start. Every replica forgets by the same rule from what it heard
(its own heartbeats and the store's, ``node_sync.py``), so they agree within a health pass.

Only memory forgets: the store's ``nodes`` row, its key, its sequence number, its revocation,
ledger and earnings stay. A forgotten node that comes back registers again and is judged as
any registration (its stored key must sign it; a revoked key is refused: ``node_auth.py``,
``store.upsert_node``); its heartbeat meanwhile is answered 404 ``unknown_node`` (register
again). A replica's node poll reads only rows changed since its last poll (5 s overlap), so
a row unchanged for a day does not bring a forgotten node back. The admin still reads every
stored node, forgotten or not: ``GET /mesh/nodes?all=true`` with the admin key
(:func:`stored_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from LLM_Mesh.core.liveness import forgettable
from LLM_Mesh.core.schemas import ForgottenNode, NodeState
from LLM_Mesh.registry.node_auth import SignedNodeAuth
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["LIST_OPENAPI", "forget_gone", "gone_ids", "stored_rows"]

# ``GET /mesh/nodes``'s ``?all=true``, read by hand in ``api.list_nodes``, in the OpenAPI
# document (its ``openapi_extra``; found 2026-12-06, departed34: it was not documented)
LIST_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "all",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": "every stored node too, forgotten or revoked (the admin key only)",
        }
    ],
    "responses": {
        "401": {
            "description": "a wrong admin key, or `all=true` without it (`invalid_credential`)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
    },
}


def gone_ids(table: NodeTable, forget_s: float, now: float | None = None) -> list[str]:
    """The nodes of ``table`` quiet past the bound at ``now`` (the table's clock)."""
    now = table.clock() if now is None else now
    expiry = table.expiry_s
    return [
        e.node_id
        for e in table.entries()
        if forgettable(e.added if e.last_heartbeat is None else e.last_heartbeat, now,
                       forget_s, expiry)
    ]  # fmt: skip


def forget_gone(rt: Runtime) -> list[str]:
    """Forget the nodes gone past ``rt.settings.node_forget_s``: the ids forgotten."""
    gone = gone_ids(rt.table, rt.settings.node_forget_s)
    for node_id in gone:
        rt.table.forget(node_id)
        rt.routing.remove(node_id)
        if rt.gateway is not None:
            rt.gateway.forget(node_id)
        if isinstance(rt.node_auth, SignedNodeAuth):
            rt.node_auth.forget(node_id)
            rt.node_homes.forget(node_id)
            rt.beat_tokens.forget(node_id)
    return gone


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)).isoformat()


def stored_rows(
    recs: Iterable[NodeRecord], revoked: Iterable[str], listed: Iterable[str]
) -> list[dict[str, Any]]:
    """The admin's rows for stored nodes not in ``listed`` (forgotten here), each a
    :class:`~LLM_Mesh.core.schemas.ForgottenNode` (the OpenAPI document's): id, state (or
    ``revoked``), URL, region, models, when registered and last heard, ``forgotten``,
    ``healthy: false`` and ``silent: true`` (cli42: before, no ``silent``)."""
    shown, out = set(listed), set(revoked)
    return [
        ForgottenNode(
            node_id=r.node_id,
            state="revoked" if r.node_id in out else NodeState.stored(r.state),
            revoked=r.node_id in out,
            forgotten=True,
            healthy=False,
            silent=True,
            url=r.url,
            region=r.region,
            models=sorted(str(m.get("id")) for m in r.models),
            registered_at=_iso(r.registered_at),
            last_heartbeat_at=_iso(r.last_heartbeat_at),
        ).model_dump(mode="json")
        for r in recs
        if r.node_id not in shown
    ]
