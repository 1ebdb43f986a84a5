"""``ledger statement --served FILE`` reads the served logs to a bound counted as read, a
line at most as long as a record held (``cli/ledger_served.read_served``; found 2026-12-06,
small35: the bound was the files' stat, which a file growing while read or ``/proc``'s
undercounts, and a line was held whole, however long)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from LLM_Mesh.cli import ledger_served
from LLM_Mesh.cli.ledger_served import read_served
from LLM_Mesh.core.served import Served

RECORD = Served(5, "n1", "r1", "m", 3, 4, "ok").to_line() + "\n"


def test_the_bound_is_on_what_is_read_not_the_files_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose stat says 0 bytes (``/proc``'s; one growing while read alike) but holds
    more than the bound is refused (failed before: its stat counted, all of it read)."""
    status = Path("/proc/self/status")
    if not status.is_file() or status.stat().st_size != 0 or len(status.read_bytes()) < 200:
        pytest.skip("no /proc/self/status that says 0 bytes")
    log = tmp_path / "served.jsonl"
    log.symlink_to(status)
    monkeypatch.setattr(ledger_served, "MAX_SERVED_BYTES", 100)
    with pytest.raises(ValueError, match="more than 100 bytes of logs, the most read"):
        read_served([log])


def test_logs_to_the_bound_are_read_and_one_byte_more_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "served.jsonl"
    log.write_text(RECORD * 3)
    (tmp_path / "served.jsonl.1").write_text(RECORD)
    monkeypatch.setattr(ledger_served, "MAX_SERVED_BYTES", 4 * len(RECORD))
    records, bad = read_served([log])
    assert len(records) == 4 and bad == []
    monkeypatch.setattr(ledger_served, "MAX_SERVED_BYTES", 4 * len(RECORD) - 1)
    with pytest.raises(ValueError, match="the most read"):
        read_served([log])


def test_a_line_longer_than_any_record_is_not_held(tmp_path: Path) -> None:
    """Attack: a log of one huge line (no line end) had the whole line held before it was
    found no record (failed before: the peak was the line). Its line is named, unheld, and
    the records after it are read."""
    log = tmp_path / "served.jsonl"
    with log.open("w") as f:
        f.write(RECORD + "x" * 2_000_000 + "\n" + RECORD + "y" * 300_000)
    tracemalloc.start()
    try:
        records, bad = read_served([log])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(records) == 2
    assert bad == [
        f"{log}:2: not a served record (longer than a record)",
        f"{log}:4: not a served record (longer than a record)",
    ]
    assert peak < 200_000


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_named_as_one_not_missing() -> None:
    """``--served /dev/zero`` (a FIFO alike): not a regular file, in words (failed before:
    "no such file")."""
    with pytest.raises(ValueError, match="is not a regular file"):
        read_served([Path("/dev/zero")])


def test_a_missing_log_says_where_a_node_keeps_it(tmp_path: Path) -> None:
    """A node that has ended no request has no served.jsonl yet: the refusal says where a
    node writes it and when (failed before: the bare "no such file"; newuser43)."""
    with pytest.raises(ValueError) as caught:
        read_served([tmp_path / "served.jsonl"])
    said = str(caught.value)
    assert said.startswith(f"--served {tmp_path / 'served.jsonl'}: no such file (")
    assert "$LLM_MESH_HOME" in said and "served_log" in said and "first request" in said
