"""A hung first gateway replica costs one command its wait, not every command.

Each ``llm-mesh`` command is a process of its own: with ``--registry HUNG,LIVE`` every
command began at HUNG (a socket that accepts and never answers) and waited its timeout
there before asking LIVE (found 2026-12-05). Two real CLI processes here: the first
learns that LIVE answers, the second begins there and never connects to HUNG.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import LLM_Mesh
from tests.cli.registry_404 import serve_http

ROOT = Path(LLM_Mesh.__file__).resolve().parents[1]


ANSWERS = {"/mesh/models": {"models": []}, "/mesh/nodes": {"nodes": []},
           "/healthz": {"status": "ok"}}  # fmt: skip


class Hung:
    """A replica that accepts connections and never answers (a stopped process's backlog)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held, never read nor answered

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def replicas() -> Iterator[tuple[Hung, str, list[str]]]:
    hung = Hung()
    try:
        with serve_http(ANSWERS) as (live, paths, _):
            yield hung, live, paths
    finally:
        hung.close()


def _cli(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLM_MESH_HOME": str(home), "COLUMNS": "100"}
    for name in ("LLM_MESH_REGISTRY_URL", "LLM_MESH_DATABASE_URL", "LLM_MESH_API_KEY"):
        env.pop(name, None)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "LLM_Mesh.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    return out, time.monotonic() - t0


def _cli_start_s(home: Path) -> float:
    """How long a CLI process takes to start here, now (``llm-mesh --version``): 13.6 to
    18.0 s measured on the shared 2-core box at load 6–11 (flaky36), its spread larger than
    the wait on HUNG that the two commands' times are compared for."""
    _out, took = _cli(home, "--version")
    return took


def test_the_next_command_begins_at_the_replica_that_answered(
    replicas: tuple[Hung, str, list[str]], tmp_path: Path
) -> None:
    hung, live, paths = replicas
    home = tmp_path / "home"
    urls = f"{hung.url},{live}"
    first_start = _cli_start_s(home)
    first, first_s = _cli(home, "models", "--registry", urls)
    assert first.returncode == 0, first.stderr
    assert len(hung.accepted) >= 1 and "/mesh/models" in paths  # waited on HUNG, then LIVE
    before = len(hung.accepted)
    # another process, another command: it begins at LIVE, and HUNG is not even connected to
    second_start = _cli_start_s(home)
    second, second_s = _cli(home, "status", "--registry", urls)
    assert second.returncode == 0, second.stderr
    assert len(hung.accepted) == before, "the second command connected to the hung replica"
    assert paths.count("/mesh/models") == 2 and "/mesh/nodes" in paths
    # each command's own time, its process's start aside (flaky36: at load ~15 the second
    # took 22.5 s against the first's 12.4 s, all of it the start's spread)
    assert second_s - second_start < first_s - first_start, (
        (first_s, first_start),
        (second_s, second_start),
    )
    # the file names the URL that answered, and times
    text = (home / "gateway-replica.json").read_text()
    assert live in text and hung.url not in text


def test_a_remembered_replica_expires(
    replicas: tuple[Hung, str, list[str]], tmp_path: Path
) -> None:
    """Once the memory is older than its 5 minutes, a command begins at the first URL again
    (a replica that was hung is given its turn back)."""
    hung, live, _paths = replicas
    home = tmp_path / "home"
    urls = f"{hung.url},{live}"
    assert _cli(home, "models", "--registry", urls)[0].returncode == 0
    memory = home / "gateway-replica.json"
    data = json.loads(memory.read_text())
    for entry in data["lists"].values():
        entry["at"] -= 301
    memory.write_text(json.dumps(data))
    before = len(hung.accepted)
    assert _cli(home, "models", "--registry", urls)[0].returncode == 0
    assert len(hung.accepted) > before
