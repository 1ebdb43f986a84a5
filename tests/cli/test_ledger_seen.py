"""ledger_seen.json: what clean runs remember, written by one run at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from LLM_Mesh.cli import ledger_seen
from LLM_Mesh.cli.ledger_seen import (
    load_checked_through,
    load_keys,
    load_seen,
    remember_keys,
    save_seen,
)
from LLM_Mesh.core.ledger_audit import Report
from tests.waiting import SOON_S, scaled

SOURCE = "registry:http://127.0.0.1:8000"


def test_two_runs_at_once_keep_both_runs_words(tmp_path: Path, monkeypatch: Any) -> None:
    """Found 2026-12-05 (review29): each run read the file, changed its part and wrote it
    back whole, so a ``receipt verify`` finishing while a ``ledger statement`` wrote lost
    the statement's window (or the other's keys). Now one run waits for the other."""
    path = tmp_path / "ledger_seen.json"
    writing = threading.Event()  # the statement is between its read and its write
    go_on = threading.Event()
    real = ledger_seen.replace_file

    def slow_replace(p: Path, data: bytes, mode: int = 0o600) -> None:
        if threading.current_thread().name == "statement":
            writing.set()
            assert go_on.wait(scaled(SOON_S))
        real(p, data, mode)

    monkeypatch.setattr(ledger_seen, "replace_file", slow_replace)
    report = Report(entries=7)
    statement = threading.Thread(
        target=save_seen,
        args=(path, SOURCE, report),
        kwargs={"through": ("tag", 7), "keys": ["k1"]},
        name="statement",
    )
    statement.start()
    assert writing.wait(scaled(SOON_S))
    other = threading.Thread(target=remember_keys, args=(path, SOURCE, ["k2"]), name="other")
    other.start()
    other.join(0.3)  # it waits for the statement's lock (without one it wrote meanwhile)
    go_on.set()
    statement.join(5)
    other.join(5)
    assert load_keys(path, SOURCE) == ["k1", "k2"]
    assert load_checked_through(path, SOURCE, "tag") == 7
    assert load_seen(path, SOURCE) == (7, report.root)
