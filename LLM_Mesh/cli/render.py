"""Rich tables and lines for the CLI (printing only; no I/O besides the console)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from LLM_Mesh.config import Settings
from LLM_Mesh.core.quarantine_reason import reason_kind

SIMULATED = " [yellow](simulated)[/]"  # a model served only by simulated nodes, a simulated node

# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates
_UNSAFE = dict.fromkeys(
    [*(c for c in range(0x20) if c not in (0x09, 0x0A)), *range(0x7F, 0xA0),
     *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)  # fmt: skip


def terminal_text(value: Any) -> str:
    """Text a peer chose (a node's answer, a listing's names) as safe to print: without
    the control characters a terminal acts on (ESC sequences clear it, set its title or
    clipboard, forge lines) or bidi overrides (text shown in another order)."""
    return str(value).translate(_UNSAFE)


def shown(value: Any) -> str:
    """A peer's string inside Rich markup: :func:`terminal_text`, its markup escaped (a
    ``[/]`` in a model id made ``llm-mesh status`` fail; ``[green]...`` forged labels)."""
    return escape(terminal_text(value))


def _count(v: Any) -> str:
    """A count a gateway sent (tokens, requests, load): a whole number as is, else ``-``
    (found 2026-12-03: printed into the markup as sent: a string carried ESC sequences and
    Rich markup, a hyperlink, to the user's terminal)."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "-"


def _real(v: Any) -> float | None:
    """A figure a gateway sent (times, sizes, rates), if it is a finite number."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _fmt_ms(v: Any) -> str:
    ms = _real(v)
    return "-" if ms is None else f"{ms:.0f} ms"


def _fmt_ms_short(v: Any) -> str:
    """A time in at most 7 cells ("9999 ms", "107 s"): the nodes table's time column is
    that wide at 80 columns (found 2026-12-05: a node's 107168 ms read "107168" / "ms")."""
    ms = _real(v)
    return _fmt_ms(ms) if ms is None or ms < 9999.5 else f"{ms / 1000:.0f} s"


def _fmt_size(n: Any) -> str:
    n = _real(n)
    if not n:
        return "-"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _short_url(url: Any) -> str:
    text = shown(url or "-")
    return text.split("://", 1)[-1]


def _prompts(declared: Any) -> str:
    """A node's signed ``keeps_no_prompts`` declaration, in words."""
    if declared is True:
        return "keeps no prompts"
    if declared is False:
        return "[yellow]may keep prompts[/]"
    return "prompts: undeclared"


def _trust(n: Mapping[str, Any], quarantines: bool = True) -> str:
    """The node's trust score, and (``quarantines``) its quarantines (models) in red and
    whether it is a canary verifier (a narrow table has both under the node's id)."""
    if "trust_score" not in n:
        return "-"
    score = _real(n["trust_score"])
    out = ("-" if score is None else f"{score:.2f}") + (
        " [dim]verifier[/]" if quarantines and n.get("verifier") else ""
    )
    return out + (f"\n{_quarantines(n)}" if quarantines and _quarantines(n) else "")


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects in a list a registry sent (anything else: none; found 2026-12-04: a
    node's ``models`` or ``quarantined`` that was not a list of objects ended ``llm-mesh
    status`` with a TypeError)."""
    return [x for x in value if isinstance(x, Mapping)] if isinstance(value, list) else []


def _quarantines(n: Mapping[str, Any]) -> str:
    """Each quarantined model and why, in short (found 2026-12-05: the models only; the whole
    reason: ``registry quarantines``, ``node info``)."""
    q = [
        f"{shown(x.get('model'))} ({shown(reason_kind(x.get('reason')))})"
        for x in _objects(n.get("quarantined"))
    ]
    return f"[red]quarantined: {', '.join(q)}[/]" if q else ""


NODE_ID_WIDTH = 40  # a node id fits whole (node-<26 base32>: 31); longer ones folded
WIDE = 100  # a console this wide has room for labels beside the ids, pairs on one line


# an older registry's listing (before 2026-12-07) does not say whether a node is silent
# (``silent``): then a node silent this long is taken as down whatever its state says, the
# default heartbeat expiry (``Settings.heartbeat_expiry_s``), which a registry run with
# another may not share
_SILENT_S = Settings.heartbeat_interval_s * Settings.missed_heartbeats


def _silent(node: Mapping[str, Any]) -> bool:
    """Whether the registry has not heard ``node`` within its heartbeat expiry: its
    listing's ``silent`` (found 2026-12-07: judged by the default expiry, a paused node of
    a registry with a longer one read "down paused" while heard from, one with a shorter
    one "paused" while silent); not said (an older registry): its last heartbeat is older
    than :data:`_SILENT_S` (no age said: not silent)."""
    said = node.get("silent")
    if isinstance(said, bool):
        return said
    age = _real(node.get("last_heartbeat_age_s"))
    return age is not None and age >= _SILENT_S


def nodes_table(nodes: Sequence[Mapping[str, Any]], width: int | None = None) -> Table:
    """The nodes; ``width``: the console's, when known: then node ids stay whole (to copy
    them into ``llm-mesh registry nodes trust|clear|revoke NODE_ID``, or grep them), in a
    column of their width, with the node's models and quarantines under its id (rich, given
    only a minimum width, cropped the table's right edge at 80 columns)."""
    t = Table(title="Nodes")
    wide = width is None  # unknown: a models column, every column as wide as rich makes it
    first = max(  # a cell's first line: the id, whole (its label goes under it: found
        # 2026-12-04: beside it, a simulated node's id left the load, time and trust
        # columns 2-3 characters each at 80 columns: "lo…", "t…", "0…")
        (min(Text.from_markup(shown(n.get("node_id"))).cell_len, NODE_ID_WIDTH) for n in nodes),
        default=4,
    )
    t.add_column("node", overflow="fold", width=None if wide else max(4, first))
    t.add_column("health", width=None if wide else len("draining"))  # the longest state
    if wide:
        t.add_column("models", overflow="fold")
    # under WIDE columns a pair of figures goes on two lines, as its header's names, each
    # figure with its unit (found 2026-12-04: at 80 columns the time cell read "25 ms" /
    # "/ 856" / "ms")
    split = "\n" if width is not None and width < WIDE else " "
    pair = split if split == "\n" else " / "
    t.add_column("load")
    t.add_column(f"ttft{pair}total")
    t.add_column(f"reqs{pair}fails")
    t.add_column("trust")
    for n in nodes:
        models = ", ".join(
            shown(m.get("id", "?"))
            + (SIMULATED if m.get("simulated") else "")
            + ("" if m.get("loaded", True) else " (cold)")
            for m in _objects(n.get("models"))
        )
        state = shown(n.get("state") or "")
        if n.get("revoked") is True:  # the admin's decision, not an outage (was "down offline")
            health = "[red]revoked[/]"
        elif n.get("healthy"):
            health = f"[green]up[/] {_real(n.get('health_score')) or 0:.2f}"
        elif state in ("paused", "draining") and not _silent(n):  # its operator's doing,
            # no outage (found 2026-12-07: "down paused", in red, as a node failing its
            # health checks); one silent past the registry's heartbeat expiry reads "down
            # paused" again
            health = f"[yellow]{state}[/]"
        else:
            health = f"[red]down[/]{' ' if wide else chr(10)}{state}"
        # a public listing has no URL (the admin's does): the region, and the declaration
        where = " · ".join(
            p
            for p in (_short_url(n["url"]) if n.get("url") else "", shown(n.get("region") or ""))
            if p
        )
        where = " · ".join(p for p in (where, _prompts(n.get("keeps_no_prompts"))) if p)
        node_sim = SIMULATED if n.get("simulated") else ""
        cells = [health, models] if wide else [health]
        # what is long goes under the id, the node column being the wide one
        label = [node_sim.strip()] if node_sim and not wide else []
        if n.get("verifier") and "trust_score" in n and not wide:  # found 2026-12-07,
            label.append("[dim]canary verifier[/]")  # newuser44: "1.00 verif…" at 80 columns
        under = [] if wide else [*label, *(x for x in (models, _quarantines(n)) if x)]
        first_line = shown(n.get("node_id")) + (node_sim if wide else "")
        t.add_row(
            "\n".join([first_line, *under, f"[dim]{where}[/]"]),
            *cells,
            f"{_count(n.get('in_flight', 0))}/{_count(n.get('max_concurrency', 1))}"
            f"{split}+{_count(n.get('queued', 0))}q",
            f"{_fmt_ms_short(n.get('ttft_ms_ewma'))}{pair}"
            f"{_fmt_ms_short(n.get('latency_ms_ewma'))}",
            f"{_count(n.get('requests', 0))}{pair}{_count(n.get('failures', 0))}",
            _trust(n, quarantines=wide),
        )
    return t


MODEL_ID_WIDTH = 24  # a catalog id fits whole (the longest is 21)


def models_table(models: Sequence[Mapping[str, Any]], width: int | None = None) -> Table:
    """The catalog; ``width``: the console's, when known (a narrow one gets no labels beside
    the ids, and the specialties under them)."""
    t = Table(title="Models")
    # ids whole (to copy them): the model column is as wide as its widest cell (id and
    # labels; on a narrow console, its widest id: a label goes under it), at most
    # MODEL_ID_WIDTH (longer ones folded); the other columns have no minimum width (rich
    # widened such columns back after shrinking them and cropped the table's right edge at
    # 80 columns)
    cells = [_model_cell(m) for m in models]
    rows = [
        (
            _specialties(m),
            f"{_fmt_size(m.get('size_bytes'))} {shown(m.get('quantization') or '')}".strip(),
            _count(m.get("context_length")),
            *_prices(m),
            _up(m),
        )
        for m in models
    ]
    spare = _specialties_room(cells, rows, width)
    wide = spare is None or (width is not None and width >= WIDE and spare > 0)
    longest = max(
        (
            Text.from_markup(c if wide else shown(m["id"])).cell_len
            for m, c in zip(models, cells, strict=True)
        ),
        default=5,
    )
    t.add_column("model", overflow="fold", width=max(5, min(longest, MODEL_ID_WIDTH)))
    t.add_column("file")  # no minimum widths: rich widened such columns back after
    t.add_column("context")  # shrinking them, and cropped the table's right edge
    if wide:  # folded between words, never cut to "…" nor within a word (found
        # 2026-12-05: at 100 to 104 columns, beside "(simulated)", it read "administrat" /
        # "ive"): as wide as the room left, at least its longest word, else the narrow form
        t.add_column("specialties", overflow="fold", width=spare)
    t.add_column("µNT/1k in", justify="right")
    t.add_column("µNT/1k out", justify="right")
    t.add_column("up")
    for cell, (specialties, *rest) in zip(cells, rows, strict=True):
        # narrow: the specialties under the id, whole words (found 2026-12-04: at 80 columns
        # they read "gener…", "reaso…", "pytho…", and the header "conte…")
        first = cell if wide else "\n".join(p for p in (cell, f"[dim]{specialties}[/]") if p)
        t.add_row(first, *rest[:2], *([specialties] if wide else []), *rest[2:])
    return t


def _specialties_room(
    cells: Sequence[str], rows: Sequence[Sequence[str]], width: int | None
) -> int | None:
    """The specialties column's width beside the others at their own widths (the model
    column as wide as its widest id and labels) on a ``width`` console: the room left, at
    most its widest cell; 0 when that room is under its longest word; None: no width known."""
    if width is None:
        return None
    names = ("model", "specialties", "file", "context", "µNT/1k in", "µNT/1k out", "up")
    columns = list(zip(*[(c, *r) for c, r in zip(cells, rows, strict=True)], strict=True))
    widths = [
        max([cell_len(name), *(Text.from_markup(c).cell_len for c in column)])
        for name, column in zip(names, columns or [()] * len(names), strict=True)
    ]
    widths[0] = max(5, min(widths[0], MODEL_ID_WIDTH))
    room = width - 3 * len(names) - 1 - sum(widths) + widths[1]  # borders and padding
    word = max((cell_len(w) for r in rows for w in r[0].split()), default=0)
    return min(room, widths[1]) if room >= max(word, cell_len("specialties")) else 0


def _up(m: Mapping[str, Any]) -> str:
    """Whether a model is up and on how many nodes, in words under "yes" (found 2026-12-05:
    "yes 1n", its "n" explained nowhere)."""
    if not m.get("available"):
        return "[dim]no[/]"
    n = _count(m.get("nodes", 0))
    return f"[green]yes[/]\n{n} node{'' if n == '1' else 's'}"


def _specialties(m: Mapping[str, Any]) -> str:
    """A model's specialties, comma-separated."""
    listed = m.get("specialties")  # a list of words; anything else none (found
    # 2026-12-05: a number ended `models` in a TypeError, a string went letter by letter)
    return ", ".join(map(shown, listed)) if isinstance(listed, list | tuple) else ""


def _model_cell(m: Mapping[str, Any]) -> str:
    """A model's id with its labels (markup)."""
    return (
        shown(m["id"])
        + (" [dim](custom)[/]" if m.get("custom") else "")
        + (SIMULATED if m.get("simulated") else "")
    )


def _prices(m: Mapping[str, Any]) -> tuple[str, str]:
    """A model's prompt and completion price (µNT per 1,000 tokens), as whole numbers."""
    given = m.get("pricing")
    pricing: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    prompt = pricing.get("prompt_per_1k", m.get("prompt_price_per_1k"))
    completion = pricing.get("completion_per_1k", m.get("completion_price_per_1k"))
    return (
        f"{prompt:,}" if isinstance(prompt, int) else "-",
        f"{completion:,}" if isinstance(completion, int) else "-",
    )


def balance_table(data: Mapping[str, Any]) -> Table:
    """``GET /v1/balance``: an account's balance, reserved and available, in whole µNT."""
    pool = data.get("payer") == "pool"
    t = Table(title="community pool (no API key)" if pool else "your balance", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("µNT", justify="right")  # (no header: each amount says µNT, newuser44)
    t.add_row("account", shown(data.get("account")))
    for what in ("balance", "reserved", "available"):
        value = data.get(what)
        t.add_row(what, f"{value:,} µNT" if isinstance(value, int) else "-")
    if pool and isinstance(data.get("daily_budget"), int):
        t.add_row("daily budget", f"{data['daily_budget']:,} µNT")
    if not data.get("settlement", True):
        t.add_row("settlement", "[yellow]off on this registry: nothing is charged[/]")
    return t


def _cost(mesh: Mapping[str, Any]) -> str:
    """What an answer cost: whole micro-NetworkTokens."""
    cost = mesh.get("cost")
    return f"{cost:,} µNT" if isinstance(cost, int) and not isinstance(cost, bool) else "-"


#: said after the cost of an answer whose receipt says it was not settled (``settled:
#: false``: a registry run without settlement, ``LLM_MESH_SETTLEMENT=0``; found 2026-12-07,
#: money41b: "cost 120 µNT" though nothing was charged)
NOT_CHARGED = "not charged: this registry does not settle"


def _not_charged(mesh: Mapping[str, Any]) -> bool:
    receipt = mesh.get("receipt")
    return isinstance(receipt, Mapping) and receipt.get("settled") is False


def print_status(
    info: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    console: Console | None = None,
    answered: str | None = None,
) -> None:
    """The status line and tables; ``answered``: the gateway that answered, named when
    several were given (found 2026-12-06, newuser38: ``LLM Mesh at R1,R2`` with R1 dead)."""
    console = console or Console()
    simulated = set(info.get("models_simulated") or [])
    up = [
        shown(m) + (" (simulated)" if m in simulated else "")
        for m in info.get("models_available") or []
    ]
    at = shown(info.get("registry_url"))
    if answered and "," in str(info.get("registry_url")):
        at = f"{shown(answered)} (the replica that answered, of {at})"
    console.print(
        f"[bold]LLM Mesh[/] at {at}: "
        f"{_count(info.get('nodes_healthy', 0))}/{_count(info.get('nodes_total', 0))} nodes healthy, "
        f"models up: {', '.join(up) or 'none'}"
    )
    console.print(models_table(list((info.get("models") or {}).values()), console.width))
    console.print(nodes_table(nodes, console.width))


def metrics_line(
    mesh: Mapping[str, Any],
    *,
    client_ttft_ms: float | None = None,
    total_ms: float | None = None,
    note: str = "",
    width: int | None = None,
) -> str:
    """Who served an answer, how fast and for what, one line of facts (markup) joined by
    " · ", ``note`` last; with ``width`` (the console's), broken into lines of at most that
    many cells between facts only, never inside one (found 2026-12-05: at a narrow width
    Rich wrapped "total" / "986 ms" and "cost 1,234" / "µNT")."""
    parts = [
        f"node {shown(mesh.get('node_id'))}",
        f"model {shown(mesh.get('model'))}",
    ]
    if mesh.get("simulated"):
        parts.append("[yellow]SIMULATED engine[/]")
    ttft = client_ttft_ms if client_ttft_ms is not None else mesh.get("ttft_ms")
    total = total_ms if total_ms is not None else mesh.get("latency_ms")
    parts.append(f"ttft {_fmt_ms(ttft)}")
    parts.append(f"total {_fmt_ms(total)}")
    tps = _real(mesh.get("tokens_per_s"))
    if tps:
        parts.append(f"{tps:.1f} tok/s")
    tokens = mesh.get("completion_tokens", 0)
    parts.append(f"{_count(tokens)} token{'' if tokens == 1 and tokens is not True else 's'}")
    parts.append(f"cost {_cost(mesh)}")
    if _not_charged(mesh):
        parts.append(f"({NOT_CHARGED})")
    if note:
        parts.append(note)
    if width is None:
        return " · ".join(parts)
    lines: list[str] = []
    line, used = "", 0
    for i, part in enumerate(parts):
        cells = Text.from_markup(part).cell_len
        room = width - (0 if i == len(parts) - 1 else 2)  # a line ends " ·" but the last
        if line and used + 3 + cells > room:  # " · " and this fact: on the next line
            lines.append(line + " ·")
            line, used = "", 0
        line, used = (f"{line} · {part}", used + 3 + cells) if line else (part, cells)
    return "\n".join([*lines, line])


def metrics_table(
    mesh: Mapping[str, Any], *, client_ttft_ms: float | None = None, total_ms: float | None = None
) -> Table:
    """Who served an answer, how fast, and what it cost, one fact a row."""
    t = Table(title="served by the mesh", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    engine = shown(mesh.get("engine") or "-")
    if mesh.get("simulated"):
        engine += " [yellow](SIMULATED)[/]"
    tps = _real(mesh.get("tokens_per_s"))
    rows = [
        ("node", shown(mesh.get("node_id"))),
        ("model", shown(mesh.get("model"))),
        ("engine", engine),
        (
            "time to first token",
            _fmt_ms(client_ttft_ms if client_ttft_ms is not None else mesh.get("ttft_ms")),
        ),
        ("total time", _fmt_ms(total_ms if total_ms is not None else mesh.get("latency_ms"))),
        (
            "tokens",
            f"{_count(mesh.get('prompt_tokens', 0))} prompt + "
            f"{_count(mesh.get('completion_tokens', 0))} completion",
        ),
        ("tokens/s", f"{tps:.1f}" if tps else "-"),
        ("cost", _cost(mesh) + (f" ({NOT_CHARGED})" if _not_charged(mesh) else "")),
    ]
    for what, value in rows:
        t.add_row(what, value)
    return t


def _cell_width(cell: str) -> int:
    """The widest line of a cell (markup), in terminal cells."""
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


FOLDED_MIN = 8  # a lesser column, folded, is at least this wide
WORD_MAX = 24  # ...and as wide as its longest word up to this (a date, a figure: whole)


def _longest_word(name: str, cells: Sequence[str]) -> int:
    """The longest word of a column's header and cells (markup), in terminal cells."""
    words = [name, *(Text.from_markup(c).plain for c in cells)]
    return max((cell_len(w) for text in words for w in text.split()), default=0)


def _fold(widest: list[int], floor: list[int], room: int) -> list[int]:
    """Column widths that sum to at most ``room``: the widest columns narrowed first, none
    under its floor (the caller checked that the floors fit)."""
    widths = list(widest)
    while sum(widths) > room:
        i = max(range(len(widths)), key=lambda j: (widths[j] > floor[j], widths[j]))
        if widths[i] <= floor[i]:
            break
        widths[i] -= 1
    return widths


def fitted_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    keys: Collection[str],
    width: int | None,
    title: str | None = None,
    right: Collection[str] = (),
) -> RenderableType:
    """Rows of markup cells whose ``keys`` columns (ids, URLs, model names: what a user
    copies into the next command) are printed whole: a table, the key columns as wide as
    their widest first line (the id; lines under it wrap) and the others folded, each at
    least as wide as its longest word (up to WORD_MAX), when that fits in ``width`` (the
    console's; None: unknown, a plain table); else one block a row, ``column  value``
    lines (found 2026-12-04: at 80 columns rich cut ids, URLs and model names to ``…``,
    and broke dates and figures mid-word: ``2026-12-0`` / ``4 15:09``)."""

    def measure(c: str, cell: str) -> int:
        return _cell_width(cell.split("\n", 1)[0]) if c in keys else _cell_width(cell)

    widest = [
        max([len(name), *(measure(name, r[i]) for r in rows)]) for i, name in enumerate(columns)
    ]
    floor = [
        w
        if c in keys
        else min(w, max(FOLDED_MIN, min(WORD_MAX, _longest_word(c, [r[i] for r in rows]))))
        for i, (c, w) in enumerate(zip(columns, widest, strict=True))
    ]
    room = None if width is None else width - 3 * len(columns) - 1  # borders and padding
    if room is None or sum(floor) <= room:
        # narrower than the widest: every column given its width (rich, left to narrow
        # them itself, narrowed figures and dates under their longest word)
        fold = room is not None and sum(widest) > room
        widths = _fold(widest, floor, room) if fold and room is not None else widest
        t = Table(title=title)
        for c, w in zip(columns, widths, strict=True):
            justify: Literal["left", "right"] = "right" if c in right else "left"
            fixed = fold or (c in keys and width is not None)
            t.add_column(c, width=w if fixed else None, overflow="fold", justify=justify)
        for r in rows:
            t.add_row(*r)
        return t
    blocks: list[RenderableType] = [Text(title, style="italic")] if title else []
    label = max(len(c) for c in columns)
    for r in rows:
        g = Table.grid(padding=(0, 1))
        g.add_column(style="bold", width=label)
        g.add_column(overflow="fold")
        for c, cell in zip(columns, r, strict=True):
            g.add_row(c, cell)
        blocks.extend([g, Text("")])
    return Group(*blocks[:-1]) if rows else Group(*blocks)
