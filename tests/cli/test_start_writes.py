"""A start that cannot write a file of its home (a full disk, a read-only one, a folder of
another user's) says so in one line and exits 1 (docs/operations.md, "Stopping and exit
statuses"). Found 2026-12-07 (fulldisk42): ``registry serve`` on a full disk ended in
uvicorn's traceback (``settlement.holder``) and exit 3; ``node start``, ``up`` and ``demo``
in a traceback of their own. The disk's refusal is injected (tests/cli/full_disk_cli.py:
``os.open``/``os.write`` of one file fail with the error number), as a mount needs root."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.waiting import START_S, scaled

ROOT = Path(__file__).resolve().parents[2]


def _run(home: Path, refused: str, number: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLM_MESH_HOME": str(home), "COLUMNS": "80",
           "PYTHONUNBUFFERED": "1", "FULL_DISK_FILE": f"{refused}:{number}"}  # fmt: skip
    for name in ("LLM_MESH_DATABASE_URL", "LLM_MESH_REGISTRY_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cli" / "full_disk_cli.py"), *args],
        env=env, capture_output=True, text=True, timeout=scaled(START_S),
    )  # fmt: skip


def _one_line(out: subprocess.CompletedProcess[str], *says: str) -> str:
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "╭" not in text, text[-3000:]
    assert "Application startup failed" not in text, text[-3000:]
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    for part in says:
        assert part in line, line
    return line


def test_registry_serve_on_a_full_disk_names_settlement_holder(tmp_path: Path) -> None:
    """Its lifespan's write of ``settlement.holder`` fails (ENOSPC): before, uvicorn's
    traceback and exit 3."""
    home = tmp_path / "home"
    out = _run(home, "settlement.holder", errno.ENOSPC, "registry", "serve", "--port",
               str(free_port()))  # fmt: skip
    _one_line(out, f"the registry could not write {home / 'settlement.holder'} (no space left "
              f"on its disk)", f"df -h {home}", "--home")  # fmt: skip
    assert not list(home.glob("settlement.holder*"))  # no temporary file left behind


def test_node_start_on_a_read_only_disk_names_node_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = _run(home, "node.key", errno.EROFS, "node", "start", "--engine", "sim", "--model",
               "m", "--port", str(free_port()), "--registry", "http://127.0.0.1:9")  # fmt: skip
    _one_line(out, f"the node could not write {home / 'node.key'} (a read-only file system)",
              "LLM_MESH_HOME")  # fmt: skip


@pytest.mark.parametrize(
    ("command", "refused", "number", "why"),
    [
        ("up", "registry.key", errno.EDQUOT, "the disk quota is used up"),
        ("demo", "admin.key", errno.EACCES, "permission denied"),
    ],
)
def test_up_and_demo_name_the_file(
    tmp_path: Path, command: str, refused: str, number: int, why: str
) -> None:
    home = tmp_path / "home"
    ports = ["--registry-port", str(free_port()), "--node-port", str(free_port())]
    out = _run(home, refused, number, command, "--engine", "sim", *ports)
    verb = "open" if number == errno.EACCES else "write"  # (a read's error too: review42c)
    _one_line(out, f"llm-mesh {command} could not {verb} {home / refused} ({why})")
    assert "stopping" not in out.stdout + out.stderr  # nothing was started


def test_a_home_on_a_full_disk_is_refused_at_once(tmp_path: Path) -> None:
    """The home's check made an empty file, which takes no space: it passed on a full disk
    (a full tmpfs, by hand), and the start failed later (the SQLite store, a traceback)."""
    home = tmp_path / "home"
    out = _run(home, "TemporaryFile", errno.ENOSPC, "registry", "serve", "--port",
               str(free_port()))  # fmt: skip
    _one_line(out, f"the state directory {home} cannot be written (No space left on device)",
              f"df -h {home}")  # fmt: skip
    assert not (home / "registry.db").exists()
