"""The dashboard's JSON: chart data, and the server's own check of a ledger entry.

- ``GET /dashboard/api/series?since=T``: the traffic series (``core/traffic.py``) as
  columns for the charts (``t`` in unix seconds); with ``since``, only the buckets that
  start at or after it (a page asks for what changed since its last bucket).
- ``GET /dashboard/api/nodes/{id}/history``: one node's minutes over the last hour.
- ``GET /dashboard/api/verify?seq=N``: the checks the ledger page runs in the browser,
  run here (``core/merkle_verify.py``, ``core/checkpoint.py``): for a browser without
  WebCrypto (a page served over plain http to another machine is not a secure context)
  or without Ed25519 in it. The page says which checks ran where.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.core.checkpoint import BadCheckpoint, open_checkpoint
from LLM_Mesh.core.identity import is_node_id
from LLM_Mesh.core.ledger_entry import entry_leaf
from LLM_Mesh.core.merkle import leaf_hash
from LLM_Mesh.core.merkle_verify import verify_inclusion
from LLM_Mesh.core.traffic import NODE
from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.errors import InvalidRequest, MeshError, UnknownNode
from LLM_Mesh.registry.dashboard.context import get_dashboard
from LLM_Mesh.registry.errors import json_response

__all__ = ["history", "series", "verify"]

_FIELDS = (
    "req_per_s", "tokens_per_s", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
    "ttft_p95_ms", "requests", "errors",
)  # fmt: skip


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number", param=name) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidRequest(f"{name} must be a finite number", param=name)
    return value


async def series(request: Request) -> Response:
    d = get_dashboard(request)
    since = _float_param(request, "since")
    ts = d.feed.series
    pts = ts.points(d.now(), since=since)
    cols: dict[str, list[Any]] = {"t": [p.t for p in pts]}
    for name in _FIELDS:
        cols[name] = [_r(getattr(p, name)) for p in pts]
    cols["errors_per_s"] = [round(p.errors / ts.bucket_s, 3) for p in pts]
    return json_response(
        {"bucket_s": ts.bucket_s, "window_s": ts.window_s, "now": d.now(), "points": cols}
    )


async def history(request: Request) -> Response:
    d = get_dashboard(request)
    node_id = request.path_params["node_id"]
    if d.runtime.table.get(node_id) is None and not is_node_id(node_id):
        # not a node's id: nothing of a link's author echoed on the gateway's origin (a
        # message, a bidi override), as the node page (found 2026-12-06, attack35)
        raise UnknownNode("there is no such node", param="node_id")
    pts = d.feed.series.history(NODE, node_id, d.now())
    return json_response(
        {
            "node_id": node_id,
            "bucket_s": d.feed.series.key_bucket_s,
            "points": {
                "t": [p.t for p in pts],
                "requests": [p.requests for p in pts],
                "errors": [p.errors for p in pts],
                "latency_ms": [_r(p.latency_ms) for p in pts],
            },
        }
    )


async def verify(request: Request) -> Response:
    """Entry ``seq``: its leaf recomputed, its inclusion in the first checkpoint that holds
    it, and that checkpoint's signature by a published key (each step: ok, and why not)."""
    d = get_dashboard(request)
    raw = request.query_params.get("seq", "")
    if not ascii_digits(raw) or len(raw) > 18:
        raise InvalidRequest("seq must be an entry number", param="seq")
    seq = int(raw)
    ledger, cp = d.runtime.ledger, d.runtime.checkpointer
    if ledger is None or cp is None:  # pragma: no cover - wiring bug
        raise MeshError("the ledger is not set up")
    entries, _ = await ledger.entries(seq - 1, 1)
    if not entries or entries[0].seq != seq:
        raise InvalidRequest(f"no ledger entry {seq}", param="seq")
    e = entries[0]
    raw_leaf = entry_leaf(
        e.seq, e.time_us, e.kind, e.from_account, e.to_account, e.amount, e.request_id,
        e.receipt_hash, bytes.fromhex(e.prev_hash),
    )  # fmt: skip
    leaf = leaf_hash(raw_leaf)
    out: dict[str, Any] = {"seq": seq, "leaf_ok": leaf.hex() == e.leaf_hash, "where": "server"}
    cps, _ = await ledger.checkpoints(seq, 1)
    if not cps:
        out.update(checkpoint=None, signature_ok=None, inclusion_ok=None,
                   reason="no signed checkpoint holds this entry yet")  # fmt: skip
        return json_response(out)
    c = cps[0]
    out["checkpoint"] = {"tree_size": c.tree_size, "root_hash": c.root_hash}
    published = {pk for pk, _at in await ledger.keys()}
    try:
        if c.public_key not in published:
            raise BadCheckpoint("signed by a key the ledger does not publish")
        opened = open_checkpoint(c.note, cp.origin, base64.b64decode(c.public_key))
        out["signature_ok"] = opened.root_hash.hex() == c.root_hash
    except BadCheckpoint as exc:
        out["signature_ok"] = False
        out["reason"] = str(exc)
    _leaf, root, path = await ledger.inclusion_proof(seq, c.tree_size)
    out["inclusion_ok"] = root.hex() == c.root_hash and verify_inclusion(
        seq, c.tree_size, leaf, path, bytes.fromhex(c.root_hash)
    )
    return json_response(out)
