"""Tables for an operator's earnings (``llm-mesh earnings``, ``llm-mesh node info``).

Input: the body of ``GET /v1/earnings`` (``registry/earnings.py``). Every amount is
printed as the integer of micro-NetworkTokens it is (µNT), never rounded to a float.
The body is the registry's words: every string in it is printed through
:func:`~LLM_Mesh.cli.render.shown` (no terminal escape, no Rich markup of its own), an
amount that is not a number as ``?``, a row that is not an object is skipped (found
2026-12-03: printed as sent, and a wrong type ended the command with a traceback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import RenderableType
from rich.table import Table

from LLM_Mesh.cli.render import fitted_table, shown
from LLM_Mesh.core.plural import counted

UNIT = "µNT"  # micro-NetworkTokens


def _num(v: Any) -> int | None:
    """An amount or count as the registry said it, ``None`` when it is not a whole number."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None if v is not None else 0
    try:
        return int(v or 0)
    except (ValueError, OverflowError):
        return None


def _int(v: Any) -> str:
    """With thousands separators, as `balance`, `ledger statement` and `grant` print amounts
    (found 2026-12-07, money41: "balance now 1000 µNT" beside the statement's "1,000")."""
    n = _num(v)
    return "?" if n is None else f"{n:,}"


def _rows(report: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = report.get(key)
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _duration(seconds: Any) -> str:
    s = _num(seconds)
    if s is None:
        return "?"
    hours, rest = divmod(s, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def summary_line(report: Mapping[str, Any]) -> str:
    """One line: whose, the window, total = earned + rewards, the balance."""
    t = report.get("totals")
    t = t if isinstance(t, Mapping) else {}
    node = f", node {shown(report['node'])}" if report.get("node") else ""
    old = report.get("old_account")
    old = f" and {shown(old)}, its account before keyed accounts" if old else ""
    return (
        f"[bold]Earnings[/] of operator {shown(report.get('operator'))} "
        f"({shown(report.get('account'))}{old}{node}), "
        f"{shown(report.get('since'))} to {shown(report.get('until'))} (UTC): "
        f"[bold]{_int(t.get('total'))} {UNIT}[/] = {_int(t.get('earned'))} for "
        f"{counted(_int(t.get('requests')), 'request')} (after {_int(t.get('fees'))} in fees) + "
        f"{_int(t.get('rewards'))} uptime rewards{_simulated_share(report)}; "
        f"balance now {_int(report.get('balance'))} {UNIT}" + held_note(report)
    )


def _simulated_share(report: Mapping[str, Any]) -> str:
    """What of the total the nodes that are simulated now earned (made-up answers, paid all
    the same), or ``""`` (found 2026-12-05: only the per node table said so). "Now": the
    registry labels by each node's registration today, and records no engine per request or
    period, so a node that earned on llama-cpp and runs sim since is counted whole (found
    2026-12-07, newuser43: "from simulated nodes" said of uptime a real model earned)."""
    share = _num(report.get("simulated_total")) or 0
    return f" ([yellow]{share:,} {UNIT} of it by nodes simulated now[/])" if share > 0 else ""


def held_note(report: Mapping[str, Any]) -> str:
    """What is held (a node of the operator quarantined: a failed canary probe, the
    departures test across sampled probes, the usage audit), or ``""`` (found 2026-12-05:
    "after a failed canary probe" only, and not where to read why)."""
    held = _num(report.get("held")) or 0
    by_node = report.get("held_by_node")
    if held <= 0:
        return ""
    items = sorted(by_node.items(), key=str) if isinstance(by_node, Mapping) else []
    nodes = ", ".join(f"{shown(n)}: {_int(a)}" for n, a in items)
    return (
        f"; [yellow]held {held:,} {UNIT}[/] ({nodes}): earned while a node of yours is "
        "quarantined (a failed canary probe, the departures test across sampled probes or the "
        "usage audit of stated tokens: llm-mesh node info says why), paid when the "
        "registry's admin clears the node, forfeited if it is revoked"
    )


def unpaid_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per node, model and reason of the requests the operator's nodes served
    unpaid in the window (``unpaid``: nobody was charged, their receipts could not carry the
    charges), or none (found 2026-12-07, money43: the operator was never told)."""
    out = []
    for r in _rows(report, "unpaid"):
        n = _num(r.get("requests"))
        if n is not None and n <= 0:
            continue
        out.append(
            f"[yellow]{counted(_int(r.get('requests')), 'request')} served unpaid[/] by node "
            f"{shown(r.get('node_id'))} (model {shown(r.get('model'))}): "
            f"{shown(r.get('reason'))}; nobody was charged for them, so nothing was paid "
            "(the registry's fault, not the node's: ask its admin, whose log has an ERROR "
            "line for each)"
        )
    return out


_SUMS = ("requests", f"earned {UNIT}", f"rewards {UNIT}", f"total {UNIT}")


def _sums(r: Mapping[str, Any]) -> list[str]:
    return [_int(r.get(k)) for k in ("requests", "earned", "rewards", "total")]


def days_table(report: Mapping[str, Any]) -> Table:
    t = Table(title="Per day (UTC)")
    t.add_column("day", min_width=10)
    for name in _SUMS:
        t.add_column(name, justify="right")
    for r in _rows(report, "by_day"):
        t.add_row(shown(r.get("day")), *_sums(r))
    return t


#: a model's (and a node's) label is what its nodes run now (:func:`_simulated_share`)
_MODEL_LABEL = {
    "all": "\n[yellow](simulated now)[/]",
    "some": "\n[yellow](partly simulated now)[/]",
}


def models_table(report: Mapping[str, Any]) -> Table:
    t = Table(title="Per model (requests)")
    t.add_column("model", overflow="fold", min_width=10)
    for name in ("requests", f"earned {UNIT}", f"fees {UNIT}"):
        t.add_column(name, justify="right")
    for r in _rows(report, "by_model"):
        t.add_row(  # a model only (or partly) sim nodes serve says so under its id
            shown(r.get("model")) + _MODEL_LABEL.get(str(r.get("simulated")), ""),
            _int(r.get("requests")),
            _int(r.get("earned")),
            _int(r.get("fees")),
        )
    return t


def nodes_table(report: Mapping[str, Any], width: int | None = None) -> RenderableType:
    """Per node; ``width``: the console's (node ids whole: found 2026-12-04, at 80 columns
    an id was folded over three lines and the table's right edge cropped). A node whose key
    the registry revoked says so under its id (found 2026-12-07, newuser44: listed as any
    other)."""
    rows = [  # a simulated node says so under its id (made-up answers, paid all the same)
        [
            shown(r.get("node_id"))
            + ("\n[red](revoked)[/]" if r.get("revoked") is True else "")
            + ("\n[yellow](simulated now)[/]" if r.get("simulated") is True else ""),
            *_sums(r),
            _duration(r.get("healthy_s")),
        ]
        for r in _rows(report, "by_node")
    ]
    columns = ("node", *_SUMS, "uptime rewarded")
    right = set(columns) - {"node"}
    return fitted_table(columns, rows, keys={"node"}, width=width, title="Per node", right=right)


def earnings_tables(report: Mapping[str, Any], width: int | None = None) -> list[RenderableType]:
    """The day, model and node tables (those with rows); ``width``: the console's."""
    out: list[RenderableType] = []
    if _rows(report, "by_day"):
        out.append(days_table(report))
    if _rows(report, "by_model"):
        out.append(models_table(report))
    if _rows(report, "by_node"):
        out.append(nodes_table(report, width))
    return out


def node_earnings_view(
    info: Mapping[str, Any], report: Mapping[str, Any] | None, problem: str | None
) -> list[str | Table]:
    """``node info``'s earnings part: the node's earnings, or why there are none to show
    (never zeros standing in for an answer the registry did not give)."""
    if info.get("registry") is None:
        return ["earnings: none (this node does not register with a registry)"]
    if report is None:
        return [f"[yellow]earnings unavailable[/]: {shown(problem or 'no answer')}"]
    parts: list[str | Table] = [summary_line(report), *unpaid_lines(report)]
    if _rows(report, "by_day"):
        parts.append(days_table(report))
    if _rows(report, "by_model"):
        parts.append(models_table(report))
    return parts
