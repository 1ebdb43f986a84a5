"""What each dashboard page shows, as plain data read from the running gateway.

No HTML here (``templates/`` render it, autoescaped) and no HTTP. Everything comes from
what the gateway already holds: the routing view of every node (the public fields of
``GET /mesh/nodes``: no node URL, no hardware), the model listing and demand counts
(``/mesh/models``, ``/mesh/demand``), the traffic series (``core/traffic.py``), the
store's record of a node, the ledger, and quality control's view of each node
(``Runtime.quality``: trust score, canary tally, quarantines, as ``GET /mesh/nodes`` adds
them). A value that does not exist (no quality data on this gateway, a node never probed)
is ``None`` and a page shows "—" with a title saying why, never a zero. Earnings are the
operator's (``operator_view.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from LLM_Mesh.core.catalog import CATALOG
from LLM_Mesh.core.schemas import NODE_PRIVATE_FIELDS, NodeState
from LLM_Mesh.core.tasks import TASK_SPECIALTIES, rank_models_for_task
from LLM_Mesh.core.traffic import MODEL, NODE, TrafficSeries
from LLM_Mesh.registry.demand import demand_report
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.listing import mesh_models, offered_specs
from LLM_Mesh.registry.runtime import Runtime

__all__ = [
    "MAX_ROWS",
    "LedgerPage",
    "canary_rows",
    "ledger_page",
    "model_rows",
    "node_detail",
    "node_rows",
    "overview",
    "quality_of",
    "stamp",
    "task_models",
]

MAX_ROWS = 500  # rows of a table (the page says how many more there are)
MICRO = 1_000_000  # micro-NetworkTokens per NetworkToken
STATES = [s.value for s in NodeState]


def _public(view: Any) -> dict[str, Any]:
    row: dict[str, Any] = view.model_dump(mode="json", exclude=set(NODE_PRIVATE_FIELDS))
    return row


def quality_of(rt: Runtime, node_id: str) -> dict[str, Any] | None:
    """Quality control's view of a node (what ``GET /mesh/nodes`` adds: ``trust_score``,
    ``trusted``, ``verifier``, ``canary_passed``, ``canary_failed``, ``quarantined``), or
    ``None`` when this gateway keeps no quality data."""
    return rt.quality.view(node_id) if rt.quality is not None else None


def _node_row(
    row: dict[str, Any], served_1h: int | None, quality: dict[str, Any] | None = None
) -> dict[str, Any]:
    cap = max(1, int(row.get("max_concurrency") or 1))
    load = int(row.get("in_flight") or 0) + int(row.get("queued") or 0)
    row["capacity"] = cap
    row["load_now"] = load
    row["load_pct"] = min(100, round(100 * load / cap))
    row["served_1h"] = served_1h
    q = quality or {}
    row["trust_score"] = q.get("trust_score")  # None: no quality data here
    row["trusted"] = bool(q.get("trusted"))
    row["verifier"] = bool(q.get("verifier"))
    passed, failed = q.get("canary_passed"), q.get("canary_failed")
    # no probe yet is no tally (the page says "—", not "0 passed")
    row["probed"] = bool(passed or failed)
    row["canary_passed"], row["canary_failed"] = passed, failed
    row["quarantined"] = list(q.get("quarantined") or [])
    row["quarantined_models"] = {x["model"]: x for x in row["quarantined"]}
    return row


def node_rows(
    rt: Runtime, traffic: TrafficSeries, now: float, only: set[str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every node (or those in ``only``) as a row, at most :data:`MAX_ROWS`, healthy ones
    first; and how many there are. Only the rows shown are built (a view per node)."""
    clock = rt.clock()
    table = rt.table
    entries = [e for e in table.entries() if only is None or e.node_id in only]
    entries.sort(key=lambda e: (not table.healthy(e, clock), e.state.value != "online", e.node_id))
    rt.routing.router.tick(clock)
    totals = traffic.totals(NODE, now)
    rows = []
    for e in entries[:MAX_ROWS]:
        t = totals.get(e.node_id)
        view = _public(rt.routing.view(e, clock))
        rows.append(_node_row(view, t.requests if t else 0, quality_of(rt, e.node_id)))
    return rows, len(entries)


def canary_rows(rt: Runtime, node_id: str) -> list[dict[str, Any]]:
    """The node's canary records, per model: passed probes as at the start of the hour, in
    power-of-two steps (``Quality.shown``: live, or exact, they told a node which requests
    were probes; no last probe's time), failed probes, quarantine and its reason (at once);
    only models a probe has checked (as shown: a first probe passed this hour is not yet);
    none without quality data."""
    if rt.quality is None:
        return []
    shown = rt.quality.shown(node_id)
    return [
        {
            "node_id": node_id, "model": r.model, "passed": shown[m], "failed": r.failed,
            "quarantined": r.quarantined, "since": stamp(r.quarantined_at), "reason": r.reason,
        }
        for m, r in sorted(rt.quality.records.get(node_id, {}).items())
        if shown[m] or r.failed or r.quarantined  # else not yet shown
    ]  # fmt: skip


def overview(rt: Runtime, traffic: TrafficSeries, now: float) -> dict[str, Any]:
    """The overview's figures: nodes by state, models up, and the traffic summary (no node
    view is built: counting states is a pass over the node table)."""
    clock = rt.clock()
    table = rt.table
    states: Counter[str] = Counter()
    healthy = simulated = total = 0
    for e in table.entries():
        total += 1
        states[e.state.value] += 1
        healthy += table.healthy(e, clock)
        simulated += e.simulated
    models = mesh_models(table)
    up = [m for m in models if m.get("available")]
    return {
        "nodes": total,
        "healthy": healthy,
        "simulated_nodes": simulated,
        "states": [(s, states.get(s, 0)) for s in STATES],
        "models_up": len(up),
        "models_up_simulated": sum(1 for m in up if m.get("simulated")),
        "catalog": len(models),
        "summary": traffic.summary(now),
    }


def node_detail(
    rt: Runtime, traffic: TrafficSeries, node_id: str, now: float
) -> dict[str, Any] | None:
    """One node's row, or ``None`` when this gateway does not know it."""
    entry = rt.table.get(node_id)
    if entry is None:
        return None
    t = traffic.totals(NODE, now).get(node_id)
    view = _public(rt.routing.view(entry, rt.clock()))
    row = _node_row(view, t.requests if t else 0, quality_of(rt, node_id))
    row["version"] = entry.version
    row["trust_parts"], row["trust_threshold"], row["canary_models"] = None, None, []
    if rt.quality is not None:
        s = rt.quality.public_score(node_id)
        row["trust_parts"] = {
            "canary": s.canary, "success": s.success, "failures": s.failures, "speed": s.speed,
        }  # fmt: skip
        row["trust_threshold"] = rt.quality.threshold
        row["canary_models"] = canary_rows(rt, node_id)
    return row


def model_rows(
    rt: Runtime, traffic: TrafficSeries, now: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Models served (or wanted: refused or waiting), the catalog entries nobody serves, and
    the demand window in seconds."""
    demand = demand_report(rt.table, rt.routing.demand)
    by_model = {d["model"]: d for d in demand["models"]}
    totals = traffic.totals(MODEL, now)
    served: list[dict[str, Any]] = []
    unserved: list[dict[str, Any]] = []
    for m in mesh_models(rt.table):
        d = by_model.get(m["id"], {})
        t = totals.get(m["id"])
        row = {
            **m,
            "requests_waiting": d.get("requests_waiting", 0),
            "requests_refused": d.get("requests_refused", 0),
            "refused_no_node": d.get("refused_no_node", 0),
            "refused_saturated": d.get("refused_saturated", 0),
            "served_1h": t.requests if t else 0,
        }
        wanted = row["requests_refused"] or row["requests_waiting"]
        (served if m.get("available") or wanted else unserved).append(row)
    return served, unserved, int(demand["window_s"])


def task_models(rt: Runtime) -> list[tuple[str, str | None, bool]]:
    """Each task type, the model the mesh would pick for it now (``None``: none is up), and
    whether only simulated nodes serve that model."""
    up = {m["id"]: bool(m.get("simulated")) for m in mesh_models(rt.table) if m.get("available")}
    specs = [s for s in offered_specs(rt.table) if s.id in up]
    out: list[tuple[str, str | None, bool]] = []
    for task in TASK_SPECIALTIES:
        ranked = rank_models_for_task(task, specs)
        pick = ranked[0].id if ranked else None
        out.append((task, pick, pick is not None and up[pick]))
    return out


def served_models(rt: Runtime) -> list[dict[str, Any]]:
    return [m for m in mesh_models(rt.table) if m.get("available")]


def catalog_size() -> int:
    return len(CATALOG)


# -- ledger ---------------------------------------------------------------------------------


@dataclass
class LedgerPage:
    tree_size: int
    entries: list[dict[str, Any]]  # newest first
    checkpoints: list[dict[str, Any]]  # newest first
    latest: dict[str, Any] | None  # the newest checkpoint


def stamp(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def amount_nt(micro: int) -> str:
    """Micro-NetworkTokens as NetworkTokens, exactly (integers only: no float)."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{frac:06d}"


async def _newest_checkpoints(ledger: SqlLedger, size: int, n: int) -> list[dict[str, Any]]:
    """The newest ``n`` checkpoints: pages after ever smaller sizes until there are enough."""
    span = max(n, 16)
    while True:
        after = max(-1, size - span)
        cps, _more = await ledger.checkpoints(after, 10_000)
        if len(cps) >= n or after == -1:
            break
        span *= 4
    out = []
    for c in reversed(cps[-n:]):
        d = c.to_json()
        d["time"] = _utc(c.time_us)
        out.append(d)
    return out


async def ledger_page(
    ledger: SqlLedger, n_entries: int = 25, n_checkpoints: int = 10
) -> LedgerPage:
    size, _root = await ledger.head()
    entries, _more = await ledger.entries(max(-1, size - n_entries - 1), n_entries)
    rows = []
    for e in reversed(entries):
        d = e.to_json()
        d["time"] = _utc(e.time_us)
        d["amount_nt"] = amount_nt(e.amount)
        rows.append(d)
    latest = await ledger.latest_checkpoint()
    cps = await _newest_checkpoints(ledger, latest.tree_size, n_checkpoints) if latest else []
    return LedgerPage(size, rows, cps, cps[0] if cps else None)
