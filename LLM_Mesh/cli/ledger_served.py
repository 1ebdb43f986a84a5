"""``llm-mesh ledger statement --operator --served FILE``: what the nodes served, held
against what the public log paid the operator's account.

Reads the nodes' served logs (``node/served_log.py``: each FILE and its rotated files,
``FILE.1`` ...), keeps, while the statement's audit reads the whole log, every entry
under a ledger key of a served request (:class:`ServedWatch`), and judges them with the
published price (``core/served_check.served_report``: pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from LLM_Mesh.cli.common import console
from LLM_Mesh.cli.ledger_http import Row
from LLM_Mesh.cli.render import shown
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS
from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.served import MAX_LINE, Served, ledger_key, parse_line
from LLM_Mesh.core.served_check import ServedReport, keys_of
from LLM_Mesh.node.served_log import served_files
from LLM_Mesh.text_files import NotRegularFile, open_regular

__all__ = ["MAX_SERVED_BYTES", "ServedWatch", "print_served", "read_served"]

_RID = ENTRY_FIELDS.index("request_id")
MAX_SERVED_BYTES = 1 << 30  # all the served files read at most (a node keeps 128 MiB)
_LINE_BYTES = 4 * MAX_LINE + 2  # of one line held: longer is never a record (MAX_LINE chars)


def read_served(given: Sequence[Path]) -> tuple[list[Served], list[str]]:
    """The records of every file given and its rotated files (each file once), and a
    word for each line that is not a record (a crash's cut last line, an edit). At most
    :data:`MAX_SERVED_BYTES` are read in all, counted as read (never by the files' stat:
    a file growing while read, ``/proc``'s, say less than they hold), and of one line at
    most :data:`_LINE_BYTES` are held (found 2026-12-06, small35: a log of one 1 GiB line
    was held whole)."""
    seen: set[Path] = set()
    out: list[Served] = []
    bad: list[str] = []
    left = MAX_SERVED_BYTES
    for g in given:
        files = served_files(g)
        if not files:
            raise ValueError(f"--served {g}: {_why_none(g)}")
        for p in files:
            real = p.resolve()
            if real in seen:
                continue
            seen.add(real)
            left = _read_one(p, left, out, bad)
    return out, bad


def _why_none(g: Path) -> str:
    if g.is_dir():
        return "is a folder (name its served.jsonl)"
    if g.exists():  # found 2026-12-06 (small35): a FIFO or /dev/zero was "no such file"
        return "is not a regular file (a FIFO or a device): name a node's served.jsonl"
    # found 2026-12-07 (newuser43): a node that has ended no request yet has none, and
    # the bare words left the operator to guess where a node keeps it
    return (
        "no such file (a node writes its served.jsonl in its home, $LLM_MESH_HOME, or where "
        "node.toml's served_log says, at the first request it ends: none yet, or another path)"
    )


def _read_one(p: Path, left: int, out: list[Served], bad: list[str]) -> int:
    """``p``'s records into ``out`` (its other lines named in ``bad``); the bytes left."""
    try:
        f = open_regular(p)  # a FIFO since listed: refused, not waited on (cli36)
    except NotRegularFile:
        raise ValueError(f"--served {p}: {_why_none(p)}") from None
    with f:
        n = 0
        while line := f.readline(min(_LINE_BYTES, left + 1)):
            left -= len(line)
            long = len(line) == _LINE_BYTES and not line.endswith(b"\n")
            while long and left >= 0 and (rest := f.readline(min(_LINE_BYTES, left + 1))):
                left -= len(rest)  # the rest of a line longer than any record, unheld
                long = not rest.endswith(b"\n")
            if left < 0:
                raise ValueError(
                    f"--served: more than {MAX_SERVED_BYTES:,} bytes of logs, the most read"
                )
            n += 1
            if len(line) == _LINE_BYTES:  # more than MAX_LINE characters, whatever they are
                bad.append(f"{p}:{n}: not a served record (longer than a record)")
                continue
            text = line.decode(errors="replace")
            if not text.strip():
                continue
            try:
                out.append(parse_line(text))
            except ValueError as exc:
                bad.append(f"{p}:{n}: not a served record ({exc})")
    return left


class ServedWatch:
    """Keeps every entry whose ledger key is one of ``records``' (see the module docstring)."""

    def __init__(self, records: Sequence[Served]) -> None:
        self.by_key: dict[str, list[Row]] = {k: [] for k in keys_of(records)}

    def rows(self, batch: Sequence[Row]) -> None:
        by, n = self.by_key, len(ENTRY_FIELDS)
        if not by:
            return
        for row in batch:
            rid = row[_RID] if len(row) == n else None
            if isinstance(rid, str) and rid:
                found = by.get(ledger_key(rid))
                if found is not None:
                    found.append(row)


def print_served(r: ServedReport, records: int, bad: Sequence[str]) -> None:
    """The report's summary, its pending and held requests (findings are the caller's)."""
    say = console.print
    say(
        f"served: {counted(records, 'record')} read, {counted(r.requests, 'answered request')} "
        f"judged ({r.not_judged} cancelled, failed or sent by no gateway: not judged); owed "
        f"{r.expected:,} µNT under the published price less the {r.fee_bps} bps fee "
        f"({'--fee-bps' if r.strict else 'the registry publishes now, GET /v1/pricing'}), "
        f"paid {r.paid:,} µNT to {shown(r.account)}",
        highlight=False,
    )
    if r.unmatched:
        say(
            f"{counted(r.unmatched, 'settle entry', 'settle entries')} ({r.unmatched_amount:,} "
            "µNT) paid the account for requests no given log holds (another node's log, or "
            "older than the logs keep)",
            highlight=False,
        )
    for p in r.pending:
        say(f"[yellow]pending[/]: {shown(p)}", highlight=False)
    for h in r.held:
        say(f"[yellow]held[/]: {shown(h)}", highlight=False)
    for o in r.other_fee:  # the price held, another fee: one of before a change, or more
        say(f"[yellow]another fee[/]: {shown(o)}", highlight=False)
    if r.other_fee:
        say(
            f"{counted(len(r.other_fee), 'request was', 'requests were')} paid under another "
            f"fee than the {r.fee_bps} bps the registry publishes now, as their own entries "
            "state (a fee of before a change; if it never charged that, pass --fee-bps to "
            "judge them by the fee it had)",
            highlight=False,
        )
    for b in bad:
        say(f"[yellow]skipped[/]: {shown(b)}", highlight=False)
