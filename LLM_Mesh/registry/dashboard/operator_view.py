"""What the operator view shows: the operator's nodes, earnings and canary verdicts.

Authenticated as ``GET /v1/earnings`` is (``earnings_api.operator_from_token``: the
operator's token as a bearer header; none, unknown or revoked is 401). The earnings are
``registry/earnings.py``'s report over the last :data:`DAYS` UTC days (settled
``settlements`` rows paid to the operator's account, after the fee, and uptime rewards
from ``reward_periods``), per day, per model and per node, read through the ledger's
engine. The canary verdicts are quality control's records (``Runtime.quality``) of the
operator's nodes, per model, quarantines with their reason. A simulated node (every model
it registered runs a simulated engine), its earnings and a model only its simulated nodes
serve are labelled so, and a node whose key the registry revoked is marked "revoked" (the
store's flag, ``Store.operator_node_keys``: its row, the nodes this gateway does not know
now, its verdicts; as ``llm-mesh earnings`` says it). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from LLM_Mesh.registry.dashboard.views import canary_rows
from LLM_Mesh.registry.earnings import earnings
from LLM_Mesh.registry.earnings_api import (
    add_unpaid,
    earnings_reads,
    label_revoked,
    label_simulated,
    operator_from_token,
)
from LLM_Mesh.registry.ledger_accounts import operator_accounts
from LLM_Mesh.registry.ports import OperatorRecord
from LLM_Mesh.registry.runtime import Runtime

__all__ = [
    "DAYS", "canary_verdicts", "mark_revoked", "operator_earnings", "operator_nodes", "signed_in",
]  # fmt: skip

DAYS = 30  # the window of the earnings shown (UTC days, today included)


async def signed_in(rt: Runtime, headers: Mapping[str, str]) -> OperatorRecord:
    """The live operator whose token the request carries (401 otherwise), as ``/v1/earnings``,
    its reads counted with that endpoint's per token (``registry/valid_rates.py``)."""
    return await operator_from_token(headers, rt.store, reads=earnings_reads(rt))


async def operator_nodes(rt: Runtime, rec: OperatorRecord) -> dict[str, bool]:
    """The operator's node ids (from their node keys; a look-up by token does not list them),
    each with whether its key is revoked."""
    keys = await rt.store.operator_node_keys(rec.name)
    return {n: keys.get(n, False) for n in sorted(set(rec.nodes) | set(keys))}


def mark_revoked(rows: Sequence[dict[str, Any]], nodes: Mapping[str, bool]) -> None:
    """Each node row's ``revoked``: its key is revoked in the store (``nodes``), or this
    gateway's table marked it so (found 2026-12-07, hygiene45: the operator view listed a
    revoked node as any other, while ``llm-mesh earnings`` said "(revoked)")."""
    for row in rows:
        row["revoked"] = bool(row.get("revoked")) or nodes.get(row["node_id"], False)


async def operator_earnings(
    rt: Runtime, rec: OperatorRecord, nodes: Mapping[str, bool], *, days: int = DAYS
) -> dict[str, Any] | None:
    """``GET /v1/earnings``'s answer for this operator (its JSON), plus ``by_node_map``;
    ``None`` when this gateway keeps no ledger."""
    if rt.ledger is None:
        return None
    account, old_account = await operator_accounts(await rt.ledger.engine(), rec.name)
    report = await earnings(
        await rt.ledger.engine(),
        operator=rec.name,
        account=account,
        old_account=old_account,
        nodes=sorted(nodes),
        days=days,
        now=rt.wall_clock(),
    )
    out = report.to_json()
    out["days"] = days
    out["by_node_map"] = {n["node_id"]: n for n in out["by_node"]}
    out["any"] = bool(out["by_day"])  # anything settled or rewarded in the window
    label_simulated(rt.table, nodes, out)
    label_revoked(nodes, out)
    await add_unpaid(rt.store, sorted(nodes), report.since, out)  # served unpaid (money43)
    return out


def canary_verdicts(rt: Runtime, nodes: Mapping[str, bool]) -> list[dict[str, Any]] | None:
    """Each (node, model) of the operator's that a canary probe has checked: its tally, last
    probe, quarantine with reason, and whether the node is revoked (``nodes``); ``None``
    when this gateway keeps no quality data."""
    if rt.quality is None:
        return None
    out = []
    for node_id in sorted(nodes):
        entry = rt.table.get(node_id)
        for row in canary_rows(rt, node_id):
            row["simulated"] = entry is not None and entry.simulated
            row["revoked"] = nodes[node_id]
            out.append(row)
    return out
