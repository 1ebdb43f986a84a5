"""Rich tables for ``llm-mesh node ...`` (printing only; the data comes in plain)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from LLM_Mesh.cli.render import fitted_table, shown
from LLM_Mesh.core.check_state import show_time, told
from LLM_Mesh.core.plan import PlanEntry
from LLM_Mesh.core.plural import counted
from LLM_Mesh.node.model_store import StoredModel


def _number(v: Any) -> float | None:
    """A figure a node sent, if it is a finite number (a string, None, an object: None)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def size(n: Any) -> str:
    value = _number(n)
    if not value:
        return "-"
    if value >= 1e9:
        return f"{value / 1e9:.1f} GB"
    if value >= 1e6:
        return f"{value / 1e6:.0f} MB"
    return f"{value / 1e3:.0f} kB"


def duration(seconds: Any) -> str:
    total = int(_number(seconds) or 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def stored_models_table(models: Sequence[StoredModel], width: int | None = None) -> RenderableType:
    """The model files; ``width``: the console's (model ids and file names stay whole)."""
    rows = [
        [
            shown(m.model_id) + ("" if m.catalog else " [dim](custom)[/]"),
            shown(m.file_name),
            size(m.size_bytes),
            m.sha256[:16] + "…",
            "[green]yes[/]" if m.configured else "[dim]no[/]",
        ]
        for m in models
    ]
    columns = ("model", "file", "size", "sha256", "configured")
    return fitted_table(columns, rows, keys={"model", "file"}, width=width, title="Model files")


WIDE_PLAN = 120  # a console this wide has room for a "why" column


def measured_speed(raw: Any, *, answers: bool = False) -> str:
    """A model's ``measured`` of ``/mesh/info`` (``core/measured_speed.py``): its average
    decode tok/s, "(simulated)" for a simulated engine's, with ``answers`` how many answers
    and their time to first token; "-" before any measured answer (or nothing readable)."""
    if not isinstance(raw, Mapping) or _number(raw.get("tokens_per_s")) is None:
        return "-"
    out = f"{_number(raw.get('tokens_per_s')):.1f}"
    if answers:
        ttft = _number(raw.get("ttft_ms"))
        out += f" [dim]({counted(_text(raw.get('answers')), 'answer')}" + (
            f", first token {ttft:.0f} ms)[/]" if ttft is not None else ")[/]"
        )
    return out + (" [yellow](simulated)[/]" if raw.get("simulated") else "")


def plan_table(
    entries: Sequence[PlanEntry],
    width: int | None = None,
    measured: Mapping[str, Any] | None = None,
) -> RenderableType:
    """The plan, best first; ``width``: the console's (model ids stay whole; under
    ``WIDE_PLAN`` columns why goes under the id: found 2026-12-04: at 80 columns rich gave
    the "why" column no width at all). ``measured``: the running node's ``/mesh/info``
    ``measured`` by model, a "measured tok/s" column beside the estimate (None: no node
    answered, no column)."""
    wide = width is None or width >= WIDE_PLAN
    rows = []
    for i, e in enumerate(entries, 1):
        if e.recommended:
            verdict = "[green]host[/]" if not e.already_hosted else "[green]hosted[/]"
        elif e.fits:
            verdict = "[yellow]fits[/]"
        else:
            verdict = "[red]no[/]"
        why = shown(e.reason)
        rows.append(
            [
                str(i),
                shown(e.model) if wide else f"{shown(e.model)}\n[dim]{why}[/]",
                verdict,
                shown(e.device or "-"),
                size(e.memory_needed_bytes),
                f"{e.est_tokens_per_s:.0f}" if e.est_tokens_per_s else "-",
                *([] if measured is None else [measured_speed(measured.get(e.model))]),
                f"{e.demand_score:.2f}",
                *([why] if wide else []),
            ]
        )
    columns: tuple[str, ...] = ("#", "model", "verdict", "where", "memory", "est. tok/s")
    columns += ("demand",) if measured is None else ("measured tok/s", "demand")
    columns += ("why",) if wide else ()
    title = "Models for this machine, best first"
    return fitted_table(columns, rows, keys={"#", "model"}, width=width, title=title)


def _served(info: Mapping[str, Any]) -> str:
    """Answered requests, then those that failed and those whose client (or the gateway)
    hung up first: not the node's failures (shown when there are any)."""
    out = f"{_text(info.get('requests_served', 0))} ({_text(info.get('requests_failed', 0))} failed"
    cancelled = info.get("requests_cancelled")
    return out + (f", {_text(cancelled)} cancelled)" if cancelled else ")")


def _text(value: Any, none: str = "-") -> str:
    """A node's value as printed: ``none`` for None or "", else its text (markup escaped)."""
    return none if value is None or value == "" else shown(value)


def info_table(info: Mapping[str, Any]) -> Table:
    """``node info``: what the node says of itself, printed literally (through ``shown``; a
    value of an odd type as its text, None as ``-``: found 2026-12-04: ``[red]`` in a node's
    fields was read as markup, ``version`` printed as ``None``)."""
    t = Table(title=f"Node {_text(info.get('node_id'))}", show_header=False)
    t.add_column("key", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    given = info.get("hardware")
    hw: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    gpu_list = hw.get("gpus")
    gpus = ", ".join(
        _text(g.get("name") if isinstance(g, Mapping) else g)
        for g in (gpu_list if isinstance(gpu_list, list) else [])
    )
    given = info.get("registry")
    registry: Mapping[str, Any] | None = given if isinstance(given, Mapping) else None
    engine = _text(info.get("engine")) + (" (simulated)" if info.get("simulated") else "")
    rows = [
        ("url", _text(info.get("url"))),
        ("state", _text(info.get("state"))),
        ("engine", engine),
        ("region", _text(info.get("region"))),
        ("version", _text(info.get("version"))),
        ("uptime", duration(info.get("uptime_s"))),
        ("requests served", _served(info)),
        ("tokens generated", _text(info.get("tokens_generated", 0))),
        (
            "in flight / queued",
            f"{_text(info.get('in_flight', 0))} / {_text(info.get('queued', 0))}",
        ),
        (
            "max concurrency / queue",
            f"{_text(info.get('max_concurrency'))} / {_text(info.get('max_queue'))}",
        ),
        ("availability hours", _text(info.get("availability_hours"), "always")),
        ("memory budget", size(info.get("memory_budget_bytes"))),
        (
            "hardware",
            f"{_text(hw.get('cpu_count', 0))} CPUs, {size(hw.get('memory_bytes'))} RAM, "
            f"{size(hw.get('disk_free_bytes'))} free disk, GPUs: {gpus or 'none'}",
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
        rows.append(("health checks", health_checks(registry.get("health"), registry)))
        revoked = registry.get("revoked_by")
        if isinstance(revoked, list) and revoked:  # its admin's decision: see the node's log
            rows.append(("revoked by", ", ".join(shown(u) for u in revoked[:8])))
    if "quality" in info:
        rows.extend(quality_rows(info.get("quality")))
    for key, value in rows:
        t.add_row(key, value)
    return t


def health_checks(raw: Any, registry: Mapping[str, Any] | None = None) -> str:
    """The registry's active health checks of this node, as its last heartbeat answer said;
    none reported by a registry the node is not registered with is said as such (found
    2026-12-07, newuser44: a revoked node's read "no check yet, or a registry older than
    this field")."""
    state = told(raw)
    if state is None and registry is not None and registry.get("registered") is False:
        return "none: the node is not registered (registry, above)"
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
    if q.get("verifier") is True:  # the admin's `registry nodes trust` (found 2026-12-07)
        trusted += (
            "; a canary verifier: the reference other nodes' probes are checked against,"
            " itself probed only against another verifier of its model file"
        )
    score = q.get("trust_score") or 0
    ok = isinstance(score, (int, float)) and not isinstance(score, bool)
    rows = [
        ("trust", f"{float(score):.2f} ({trusted})" if ok else f"? ({trusted})"),
        (
            "canary probes",
            f"{shown(q.get('canary_passed', 0))} passed, {shown(q.get('canary_failed', 0))} failed"
            " (passed: as at the start of the hour, in powers of two)",
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


def hosted_models_table(models: Any, width: int | None = None) -> RenderableType:
    """The node's models; ``width``: the console's (model ids stay whole). What the node
    sent, printed literally; an entry that is not an object is skipped."""
    rows = []
    for m in models if isinstance(models, list) else []:
        if not isinstance(m, Mapping):
            continue
        # the node's load_time_s is what a request would wait for the load: 0 once loaded,
        # said as "-", not "0.0 s" (found 2026-12-07, newuser39: read as "loaded in 0.0 s")
        load_s = None if m.get("loaded") else _number(m.get("load_time_s"))
        sha = m.get("sha256")
        rows.append(
            [
                _text(m.get("id"))
                + (" [dim](custom)[/]" if m.get("custom") else "")
                + (" [yellow](simulated)[/]" if m.get("simulated") else ""),
                "[green]yes[/]" if m.get("loaded") else "[dim]could be loaded[/]",
                "-" if load_s is None else f"{load_s:.1f} s",
                _text(m.get("context_length")),
                "yes" if m.get("continuation") else "no",
                (shown(str(sha)[:16]) + "…") if sha else "-",
                measured_speed(m.get("measured"), answers=True),
            ]
        )
    columns = (
        "model",
        "loaded",
        "load time",
        "context",
        "continuation",
        "sha256",
        "measured tok/s",
    )
    return fitted_table(columns, rows, keys={"model"}, width=width, title="Models")
