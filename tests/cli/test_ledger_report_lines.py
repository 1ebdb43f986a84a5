"""What ``llm-mesh ledger verify`` prints of a log that checks out (``print_report``)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from LLM_Mesh.cli import ledger_render
from LLM_Mesh.core.checkpoint import Checkpoint
from LLM_Mesh.core.ledger_audit import Report


def _printed(report: Report, monkeypatch: Any) -> str:
    out = io.StringIO()
    monkeypatch.setattr(ledger_render, "console", Console(file=out, width=200))
    ledger_render.print_report(report, 0.1)
    return " ".join(out.getvalue().split())


def test_the_entries_a_checkpoint_covers_are_named_as_receipt_verify_names_them(
    monkeypatch: Any,
) -> None:
    """Found 2026-12-07 (newuser40): with 11 entries and the newest checkpoint at size 9,
    ``ledger verify`` said "the last 2 entries are not under a signed checkpoint yet (the
    newest covers 9)" while ``receipt verify --ledger`` of the same log said "entries 9, 10
    are not in a signed checkpoint yet": "covers 9" read as covering entry 9."""
    for entries, size in ((11, 9), (5, 1)):
        cp = Checkpoint(origin="o", tree_size=size, root_hash=b"\0" * 32, time_us=0, note="")
        said = _printed(Report(entries=entries, checkpoint=cp), monkeypatch)
        late = entries - size
        assert f"the last {late} entries are not under a signed checkpoint yet" in said, said
        first = "entry 0" if size == 1 else f"entries 0 to {size - 1}"
        assert f"(the newest, at size {size}, covers {first})" in said, said
        assert f"covers {size})" not in said, said


def test_a_log_wholly_under_its_newest_checkpoint_says_nothing_of_later_entries(
    monkeypatch: Any,
) -> None:
    cp = Checkpoint(origin="o", tree_size=4, root_hash=b"\0" * 32, time_us=0, note="")
    said = _printed(Report(entries=4, checkpoint=cp), monkeypatch)
    assert "OK: every hash, signature, proof and balance checks out" in said, said
    assert "not under a signed checkpoint" not in said, said
