"""``llm-mesh simulate`` (simulator/cli.py): one table, on a clock it names."""

from __future__ import annotations

import pytest

from LLM_Mesh.simulator import format_table, main, run_scenario
from LLM_Mesh.simulator.cli import CLASS_NOTE, CLOCK_NOTE, class_cells, format_row


def test_main_prints_the_table_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--scenario", "slow-node", "--strategy", "ours", "--strategy", "random"]
    assert main([*args, "--seed", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("scenario ")]
    assert len(header) == 1, lines
    rows = [line.split()[:2] for line in lines if line.startswith("slow-node ")]
    assert rows == [["slow-node", "ours"], ["slow-node", "random"]]  # each once, in run order
    assert lines.index(CLOCK_NOTE) < header[0]


def test_latencies_are_labelled_virtual_clock(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "slow-node", "--strategy", "ours", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "virtual clock" in out and "not measured" in out
    header = next(line for line in out.splitlines() if line.startswith("scenario "))
    for column in ("sim p50 ms", "sim p99 ms", "sim p99.9 ms", "wall s"):
        assert column in header
    assert " p50 ms" not in header.replace("sim p50 ms", "")  # no unlabelled milliseconds


def test_format_table_has_the_note_the_header_and_one_row_per_report() -> None:
    report = run_scenario("slow-node", "ours", seed=2, duration_s=2.0)
    lines = format_table([report, report]).splitlines()
    assert lines[0] == CLOCK_NOTE and lines[1].startswith("scenario ")
    assert lines[3:] == [format_row(report)] * 2
    assert format_table([]).splitlines()[1].startswith("scenario ")
    row = format_row(report).split()
    assert row[:3] == ["slow-node", "ours", str(report.requests)]
    assert row[4] == f"{report.p50_ms:.0f}"


def test_classes_print_a_table_per_class(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "keyed-rush", "--strategy", "ours"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert CLASS_NOTE in lines and "virtual clock" in CLASS_NOTE
    header = next(line for line in lines if line.startswith("scenario      strategy      class"))
    for column in ("sim p50 ms", "sim p95 ms", "sim p99 ms", "sim wait p95 ms", "refused"):
        assert column in header
    report = run_scenario("keyed-rush", "ours", seed=1)
    rows = [line.split() for line in lines if line.startswith("keyed-rush ")]
    assert rows[1:] == [list(c) for c in class_cells(report)]  # the run's row, then a class each
    assert [row[2] for row in rows[1:]] == ["keyed", "anonymous"]


def test_keyed_share_option_and_none_without(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "slow-node", "--strategy", "ours", "--seed", "2"]) == 0
    assert CLASS_NOTE not in capsys.readouterr().out  # one class: no table per class
    args = ["--scenario", "slow-node", "--strategy", "ours", "--seed", "2"]
    assert main([*args, "--keyed-share", "0.5", "--anonymous-share", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    runs = [r for r in rows if r[:1] == ["slow-node"]]  # the run's row, then a class each
    assert [r[2] for r in runs[1:]] == ["keyed", "anonymous"]
    for bad in ("1.5", "x", "nan"):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--keyed-share", bad])
        assert exc.value.code == 2


def test_keyed_wait_option_counts_the_waiters(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--scenario", "keyed-rush", "--strategy", "ours", "--anonymous-share", "1"]
    assert main([*args, "--keyed-wait", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("scenario      strategy      class"))
    for column in ("waited", "sim gw p50/p95 ms"):
        assert column in header
    report = run_scenario("keyed-rush", "ours", seed=1, anonymous_share=1.0, keyed_wait_s=10.0)
    rows = [line.split() for line in lines if line.startswith("keyed-rush ")]
    assert rows[1:] == [list(c) for c in class_cells(report)]
    keyed = report.classes["keyed"]
    assert int(rows[1][10]) == keyed.waited > 0
    assert rows[1][11] == f"{keyed.gate_wait_p50_ms:.0f}/{keyed.gate_wait_p95_ms:.0f}"
    assert rows[2][10:] == ["0", "-"]  # no anonymous request waited at the gateway
    for bad in ("-1", "61", "x", "nan"):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--keyed-wait", bad])
        assert exc.value.code == 2
