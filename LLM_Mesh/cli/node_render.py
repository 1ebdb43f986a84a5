"""Rich tables for ``llm-mesh node ...`` (printing only; the data comes in plain)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from LLM_Mesh.cli.render import shown
from LLM_Mesh.core.check_state import show_time, told
from LLM_Mesh.core.plan import PlanEntry
from LLM_Mesh.node.model_store import StoredModel


def size(n: Any) -> str:
    if not n:
        return "-"
    value = float(n)
    if value >= 1e9:
        return f"{value / 1e9:.1f} GB"
    if value >= 1e6:
        return f"{value / 1e6:.0f} MB"
    return f"{value / 1e3:.0f} kB"


def duration(seconds: Any) -> str:
    total = int(float(seconds or 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def stored_models_table(models: Sequence[StoredModel]) -> Table:
    t = Table(title="Model files")
    for col in ("model", "file", "size", "sha256", "configured"):
        t.add_column(col, no_wrap=col != "file")
    for m in models:
        t.add_row(
            m.model_id + ("" if m.catalog else " [dim](custom)[/]"),
            m.file_name,
            size(m.size_bytes),
            m.sha256[:16] + "…",
            "[green]yes[/]" if m.configured else "[dim]no[/]",
        )
    return t


def plan_table(entries: Sequence[PlanEntry]) -> Table:
    t = Table(title="Models for this machine, best first")
    for col in ("#", "model", "verdict", "where", "memory", "tokens/s", "demand"):
        t.add_column(col, no_wrap=True)
    t.add_column("why", ratio=1)
    for i, e in enumerate(entries, 1):
        if e.recommended:
            verdict = "[green]host[/]" if not e.already_hosted else "[green]hosted[/]"
        elif e.fits:
            verdict = "[yellow]fits[/]"
        else:
            verdict = "[red]no[/]"
        t.add_row(
            str(i),
            e.model,
            verdict,
            e.device or "-",
            size(e.memory_needed_bytes),
            f"{e.est_tokens_per_s:.0f}" if e.est_tokens_per_s else "-",
            f"{e.demand_score:.2f}",
            e.reason,
        )
    return t


def _served(info: Mapping[str, Any]) -> str:
    """Answered requests, then those that failed and those whose client (or the gateway)
    hung up first: not the node's failures (shown when there are any)."""
    out = f"{info.get('requests_served', 0)} ({info.get('requests_failed', 0)} failed"
    cancelled = info.get("requests_cancelled")
    return out + (f", {cancelled} cancelled)" if cancelled else ")")


def info_table(info: Mapping[str, Any]) -> Table:
    t = Table(title=f"Node {info.get('node_id')}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    hw = info.get("hardware") or {}
    gpus = ", ".join(str(g.get("name")) for g in hw.get("gpus") or []) or "none"
    registry = info.get("registry")
    rows = [
        ("url", info.get("url")),
        ("state", info.get("state")),
        ("engine", f"{info.get('engine')}" + (" (simulated)" if info.get("simulated") else "")),
        ("region", info.get("region") or "-"),
        ("version", info.get("version")),
        ("uptime", duration(info.get("uptime_s"))),
        ("requests served", _served(info)),
        ("tokens generated", info.get("tokens_generated", 0)),
        ("in flight / queued", f"{info.get('in_flight', 0)} / {info.get('queued', 0)}"),
        ("max concurrency / queue", f"{info.get('max_concurrency')} / {info.get('max_queue')}"),
        ("availability hours", info.get("availability_hours") or "always"),
        ("memory budget", size(info.get("memory_budget_bytes"))),
        (
            "hardware",
            f"{hw.get('cpu_count', 0)} CPUs, {size(hw.get('memory_bytes'))} RAM, "
            f"{size(hw.get('disk_free_bytes'))} free disk, GPUs: {gpus}",
        ),
        (
            "registry",
            "standalone (register = false)"
            if not registry
            else f"{shown(registry.get('url'))} · "
            + (
                "registered"
                if registry.get("registered")
                else f"not registered: {shown(registry.get('last_error'))}"
            ),
        ),
    ]
    if registry:
        rows.append(("health checks", health_checks(registry.get("health"))))
        revoked = registry.get("revoked_by")
        if isinstance(revoked, list) and revoked:  # its admin's decision: see the node's log
            rows.append(("revoked by", ", ".join(shown(u) for u in revoked[:8])))
    if "quality" in info:
        rows.extend(quality_rows(info.get("quality")))
    for key, value in rows:
        t.add_row(key, str(value))
    return t


def health_checks(raw: Any) -> str:
    """The registry's active health checks of this node, as its last heartbeat answer said."""
    state = told(raw)
    if state is None:
        return "not reported (no check yet, or a registry older than this field)"
    if state.ok:
        return f"passing (last {show_time(state.checked_at)})"
    why = state.why or "the registry gave no reason"
    return (
        f"[red]FAILING[/] since {show_time(state.since)}: {escape(why)}: out of routing, "
        "no uptime credit, until a check passes"
    )


def quality_rows(q: Any) -> list[tuple[str, str]]:
    """The registry's verdicts on this node: trust score, canary probes, quarantines (why).
    The registry's words: printed through ``shown`` (no terminal escape, no markup of its
    own); a score that is not a number is ``?`` (found 2026-12-03: printed as sent, and a
    string score ended ``node info`` with a traceback)."""
    if not isinstance(q, Mapping) or "trust_score" not in q:
        return [("trust", "unknown (the registry did not say)")]
    trusted = "trusted" if q.get("trusted") is True else "not trusted"
    score = q.get("trust_score") or 0
    ok = isinstance(score, (int, float)) and not isinstance(score, bool)
    rows = [
        ("trust", f"{float(score):.2f} ({trusted})" if ok else f"? ({trusted})"),
        (
            "canary probes",
            f"{shown(q.get('canary_passed', 0))} passed, {shown(q.get('canary_failed', 0))} failed",
        ),
    ]
    quarantined = q.get("quarantined")
    for x in quarantined if isinstance(quarantined, list) else []:
        if isinstance(x, Mapping):
            said = (
                f"{shown(x.get('model'))} since {shown(x.get('since'))}: {shown(x.get('reason'))}"
            )
            rows.append(("QUARANTINED", said))
    return rows


def hosted_models_table(models: Sequence[Mapping[str, Any]]) -> Table:
    t = Table(title="Models")
    for col in ("model", "loaded", "load time", "context", "continuation", "sha256"):
        t.add_column(col, no_wrap=True)
    for m in models:
        load_s = m.get("load_time_s")
        t.add_row(
            str(m.get("id"))
            + (" [dim](custom)[/]" if m.get("custom") else "")
            + (" [yellow](simulated)[/]" if m.get("simulated") else ""),
            "[green]yes[/]" if m.get("loaded") else "[dim]could be loaded[/]",
            "-" if load_s is None else f"{float(load_s):.1f} s",
            str(m.get("context_length") or "-"),
            "yes" if m.get("continuation") else "no",
            (str(m.get("sha256"))[:16] + "…") if m.get("sha256") else "-",
        )
    return t
