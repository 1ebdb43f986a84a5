"""``llm-mesh registry serve`` on SQLite, a real process: a store call hung for good in
aiosqlite's thread no longer holds its stop for ever (``registry/stop_watchdog.py``).

The hang is injected as a disk that stops answering: every statement on the store's
aiosqlite connections blocks for good, in that connection's own thread, once a flag file
exists (a SQLite trace callback, which SQLite runs in the thread executing the statement).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.waiting import START_S, scaled

ROOT = Path(__file__).resolve().parents[2]

# the CLI, with every aiosqlite connection traced: a statement after the flag never ends
_SERVE = textwrap.dedent(
    """
    import os, sys, threading
    import aiosqlite.core

    FLAG = os.environ["HANG_FLAG"]
    _connect = aiosqlite.core.Connection._connect

    def _stall(_statement):
        if os.path.exists(FLAG):  # the disk stopped answering: this thread waits for good
            threading.Event().wait()

    async def _traced(self):
        conn = await _connect(self)
        await conn.set_trace_callback(_stall)
        return conn

    aiosqlite.core.Connection._connect = _traced
    from LLM_Mesh.cli.main import app
    sys.argv[0] = "llm-mesh"
    app()
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serving(tmp_path: Path, bound_s: str | None) -> tuple[subprocess.Popen[str], Path, Path]:
    home, flag, log = tmp_path / "home", tmp_path / "hang", tmp_path / "registry.log"
    port = _port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HANG_FLAG": str(flag),
           "LLM_MESH_HOME": str(home), "LLM_MESH_ADMIN_KEY": "lma_" + "a" * 40,
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    env.pop("LLM_MESH_DATABASE_URL", None)
    env.pop("LLM_MESH_REGISTRY_SHUTDOWN_S", None)
    if bound_s is not None:
        env["LLM_MESH_REGISTRY_SHUTDOWN_S"] = bound_s
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, "registry", "serve", "--port", str(port)],
        env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out.close()
    deadline = time.monotonic() + scaled(START_S)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"registry serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, flag, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"registry serve did not start: {log.read_text()[-3000:]}")


def _stopped_within(proc: subprocess.Popen[str], limit_s: float) -> float | None:
    t0 = time.monotonic()
    try:
        proc.wait(limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None
    return time.monotonic() - t0


def test_a_registry_whose_store_hangs_at_stop_exits_within_its_bound(tmp_path: Path) -> None:
    """Found 2026-12-03 (docs/ARCHITECTURE.md): a store call hung for good in aiosqlite's
    thread held ``registry serve``'s stop for ever after SIGTERM (settlement's bounded stop
    waits for the step it cancelled, whose connection close queues behind the hung call;
    aiosqlite's close waits for its thread, not a daemon). Now the stop is bounded
    (``LLM_MESH_REGISTRY_SHUTDOWN_S``): one WARNING naming what did not finish, then exit 70."""
    proc, flag, log = _serving(tmp_path, "4")
    flag.touch()  # from now on every store statement hangs in its thread
    proc.send_signal(signal.SIGTERM)
    took = _stopped_within(proc, 30.0)
    text = log.read_text()
    assert took is not None, f"registry serve did not exit 30 s after SIGTERM: {text[-3000:]}"
    assert 3.5 < took < 4.0 + 6.0, (took, text[-3000:])  # the bound, and no sooner
    assert proc.returncode == 70, text[-3000:]
    overdue = [line for line in text.splitlines() if "did not stop within 4 s" in line]
    assert len(overdue) == 1, text[-3000:]
    assert "WARNING" in overdue[0] and "SIGTERM" in overdue[0], overdue
    assert "still running" in overdue[0], overdue  # names what did not finish


def test_a_clean_stop_is_not_cut_short(tmp_path: Path) -> None:
    """No hang: the stop ends as it always did, well inside the bound, with no warning."""
    proc, _flag, log = _serving(tmp_path, None)
    proc.send_signal(signal.SIGTERM)
    took = _stopped_within(proc, 30.0)
    text = log.read_text()
    assert took is not None and took < 20.0, text[-3000:]
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, text[-3000:])
    assert "did not stop within" not in text
    assert "Application shutdown complete" in text, text[-3000:]
