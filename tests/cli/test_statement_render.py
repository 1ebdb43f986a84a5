"""``ledger statement``'s list of entries on a narrow terminal (found 2026-12-05, newuser31:
at 80 columns each entry wrapped where Rich broke it, its counterparty's account starting
the next line at column 0 as if it were a line of its own, and its receipt and request
split over the following ones). An entry that does not fit on one line keeps its number,
time, kind and amount on the first and the rest indented under them."""

from __future__ import annotations

from rich.console import Console

from LLM_Mesh.cli import statement_render
from LLM_Mesh.core.ledger_statement import Line, Statement

OP = "operator:7d58f640d515de148d2da48a25d655b8"
WHY = "receipt c25effd2e7f8c458… (request req-64fc880b3a18e311ee256a54c447b5c2)"


def _printed(width: int) -> list[str]:
    s = Statement("user:a781d2804bc179dead9133b6")
    s.lines = [
        Line(5, 1_796_495_000_000_000, "grant", 5_000_000, "mint", None, None, True, "paid in"),
        Line(6, 1_796_495_000_000_000, "settle", -33, OP, "req-x", "c25e", False, WHY),
    ]
    console = Console(width=width, record=True, color_system=None)
    statement_render.print_statement(s, console)
    return console.export_text().splitlines()


def test_an_entry_too_long_for_the_terminal_keeps_its_parts_together() -> None:
    lines = _printed(80)
    assert all(len(line) <= 80 for line in lines), lines
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("6 "))
    assert lines[at].split()[-1] == "-33", lines  # number, time, kind, amount: one line
    rest = lines[at + 1 :]
    assert rest[0].startswith(" " * 10 + OP), lines  # the rest under them, indented
    assert all(line.startswith(" " * 10) and line == line.rstrip() for line in rest), lines
    assert "req-64fc880b3a18e311ee256a54c447b5c2" in " ".join(rest), lines
    assert "(not under a signed checkpoint yet)" in " ".join(" ".join(rest).split()), lines


def test_an_entry_that_fits_stays_on_one_line() -> None:
    lines = _printed(260)
    entry = next(line for line in lines if line.lstrip().startswith("6 "))
    assert OP in entry and WHY in entry and "not under a signed checkpoint yet" in entry
    grant = next(line for line in _printed(80) if line.lstrip().startswith("5 "))
    assert grant.split()[-3:] == ["+5,000,000", "mint", "paid"] or "paid in" in grant, grant


def test_an_account_the_log_never_names_is_said_not_just_ok() -> None:
    """Found 2026-12-07 (money41): ``ledger statement --account user:…`` with one digit
    mistyped printed "0 entries ... OK: every debit of the account names a receipt you
    hold", exit 0, as for a clean account: nothing said that the log never names it."""
    console = Console(width=200, record=True, color_system=None)
    statement_render.print_statement(Statement("user:245392d39ed8a31c33650b4e"), console)
    text = " ".join(console.export_text().split())
    assert "the log holds no entry of user:245392d39ed8a31c33650b4e" in text, text
    assert "llm-mesh balance" in text, text
