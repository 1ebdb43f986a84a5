"""Detecting this machine's hardware (node/hardware.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from LLM_Mesh.core.hardware import MIB, Machine
from LLM_Mesh.node.hardware import detect_gpus, detect_hardware, probe_hardware, run_command


def test_detect_with_fake_meminfo_and_gpu(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n")
    calls: list[tuple[Sequence[str], float]] = []

    def fake_run(argv: Sequence[str], timeout: float) -> str | None:
        calls.append((argv, timeout))
        return "Tesla T4, 15360, 15000\n"

    hw = detect_hardware(tmp_path / "not" / "yet", meminfo=meminfo, run=fake_run, nvidia_timeout=3)
    assert hw.memory_bytes == 8000000 * 1024
    assert hw.model_dump()["memory_available_bytes"] == 6000000 * 1024
    assert hw.cpu_count >= 1 and hw.disk_free_bytes > 0
    assert hw.gpus == [
        {"name": "Tesla T4", "memory_total_bytes": 15360 * MIB, "memory_free_bytes": 15000 * MIB}
    ]
    assert calls[0][0][0] == "nvidia-smi" and calls[0][1] == 3


def test_no_nvidia_smi_means_no_gpus(tmp_path: Path) -> None:
    assert detect_gpus(lambda argv, t: None) == []
    assert run_command(["definitely-not-a-command-xyz"], 1.0) is None
    hw = detect_hardware(tmp_path, meminfo=tmp_path / "missing", run=lambda a, t: None)
    assert hw.memory_bytes == 0 and hw.gpus == []


def test_run_command_failure_and_timeout() -> None:
    assert run_command(["false"], 5.0) is None
    assert run_command(["sleep", "5"], 0.2) is None
    assert run_command(["echo", "hi"], 5.0) == "hi\n"


def test_module_prints_json_plan(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.node.hardware", "--home", str(tmp_path), "--plan"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    data = json.loads(out)
    assert data["hardware"]["cpu_count"] >= 1
    assert {e["model"] for e in data["plan"]} >= {"gemma-3-270m", "mistral-7b"}
    assert isinstance(data["default_models"], list)
    assert "not measured here" in data["speed_note"]  # the setup script prints it


def test_module_needs_the_standard_library_only(tmp_path: Path) -> None:
    """``setup-node-operator.sh --dry-run`` runs it before any venv exists (issue 7, 9)."""
    code = (
        "import contextlib, io, sys\n"
        "from LLM_Mesh.node.hardware import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['--home', {str(tmp_path)!r}, '--plan'])\n"
        "print(sorted(m for m in ('pydantic', 'tomli_w', 'httpx', 'fastapi') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.strip() == "[]"


def test_probe_is_plain_data_and_detect_wraps_it(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 4000000 kB\nMemAvailable: 1000000 kB\n")
    machine = probe_hardware(tmp_path, meminfo=meminfo, run=lambda a, t: None)
    assert isinstance(machine, Machine)
    hw = detect_hardware(tmp_path, meminfo=meminfo, run=lambda a, t: None)
    assert hw.model_dump()["memory_available_bytes"] == machine.memory_available_bytes
    assert hw.memory_bytes == machine.memory_bytes == 4000000 * 1024
