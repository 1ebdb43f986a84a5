"""``llm-mesh ledger statement``'s list of an account's entries (``core/ledger_statement``).

An entry is one line where the console is wide enough; else its number, time, kind and
amount stay on the first line and the counterparty, what explains it and whether it is
signed yet are wrapped, indented, under them (found 2026-12-05: at 80 columns each entry
wrapped where it broke, its counterparty starting a line at column 0 as if an entry).
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text

from LLM_Mesh.cli.render import shown
from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.core.ledger_statement import Line, Statement
from LLM_Mesh.core.plural import counted

INDENT = 10  # the detail's indent under an entry that does not fit on one line


def when(time_us: int | None) -> str:
    """An entry's time as printed; one no calendar holds (found 2026-12-05: a row dated
    2^63 µs, or not a number, ended the statement in a traceback before its verdict)."""
    try:
        if time_us is not None:
            return datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        pass
    return f"{'(out of range)':<19}"


def _entry(line: Line) -> tuple[str, str]:
    """The entry's head (number, time, kind, amount) and its detail, as markup."""
    mark = "" if line.signed else "  [yellow](not under a signed checkpoint yet)[/]"
    style = "red" if line.why == "NO RECEIPT" else "default"
    head = f"  {line.seq:>8}  {when(line.time_us)}  {shown(line.kind):<8} {line.amount:>+14,}"
    return head, f"{shown(line.other)}  [{style}]{shown(line.why)}[/]{mark}"


def print_statement(s: Statement, console: Console) -> None:
    console.print(
        f"statement of {shown(s.account)}: {counted(len(s.lines), 'entry', 'entries')} "
        f"(every one in the log), {counted(s.receipts, 'receipt')} held; "
        f"paid in {s.paid_in:,} µNT, taken out {s.taken_out:,} µNT, balance {s.balance:,} µNT",
        highlight=False,
    )
    if not s.lines:  # found 2026-12-07 (money41): a mistyped --account was only "OK"
        console.print(
            f"[yellow]note[/]: the log holds no entry of {shown(s.account)}: a new account, "
            "or not the one you meant (`llm-mesh balance` names a key's, `llm-mesh earnings` "
            "an operator's)",
            highlight=False,
        )
    for line in s.lines:
        head, detail = _entry(line)
        whole = f"{head}  {detail}"
        if Text.from_markup(whole).cell_len <= console.width:
            console.print(whole, highlight=False)
        else:
            console.print(head.rstrip(), highlight=False)
            room = max(20, console.width - INDENT)
            for part in Text.from_markup(detail).wrap(console, room, overflow="fold"):
                part.rstrip()
                console.print(Text(" " * INDENT) + part, highlight=False)
    if not s.debits_judged:  # found 2026-12-07 (money41b): the pool's was always MISMATCH
        why = (
            "the pool pays for anonymous requests, whose receipts only their askers hold"
            if s.account == POOL
            else "no --receipts given (another account's receipts are its key's; --receipts "
            "DIR judges each debit against those)"
        )
        console.print(f"[yellow]debits not judged[/]: {why}", highlight=False)
    for p in s.pending:
        console.print(f"[yellow]pending[/]: {shown(p)}", highlight=False)
    for u in s.unchecked:
        console.print(f"[yellow]unchecked[/]: {shown(u)}", highlight=False)


def operator_ok(served: bool, *, first: bool, signed: bool) -> str:
    """What a clean ``--operator`` statement checked: the listing, the account the
    registry names for the token (against the one remembered), and the served logs."""
    return (
        "the list is every entry of your operator account in the log"
        + (", which checks out against the registry's signed checkpoint; " if signed else "; ")
        + (
            "the account named for your operator token is remembered: a later statement "
            "refuses another"
            if first
            else "the registry names the same account for your operator token as before"
        )
        + (
            "; every request the served logs hold was paid to it"
            if served
            else "; what your node served is not checked: add --served FILE (its served.jsonl)"
        )
    )
