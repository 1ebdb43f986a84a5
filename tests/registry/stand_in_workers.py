"""Stand-in workers for the tests of ``registry serve --workers N``'s supervisor
(``registry/workers.py``): small Python processes that serve the socket the supervisor
hands them, as a worker does (its descriptor in ``LLM_MESH_LISTEN_FD``), and answer each
connection with their pid; :func:`supervisor` makes a supervisor of them and :func:`drive`
runs it. No registry, no database. Used by ``test_workers.py`` (start, restart, stop),
``test_workers_heartbeats.py`` (the hang watch) and ``test_workers_socket.py`` (the one
socket)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from LLM_Mesh.core.worker_restart import HangPolicy, RestartPolicy
from LLM_Mesh.registry.workers import WorkerSupervisor
from tests.ports import free_port
from tests.waiting import SOON_S, scaled

__all__ = [
    "BEAT_TIMEOUT_S",
    "WORKER",
    "all_answering",
    "drive",
    "gone",
    "killed_lines",
    "pid_at",
    "supervisor",
    "wait_until",
]

WORKER = r"""
import os, signal, socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "fail":
    sys.exit(3)
if mode == "slow":
    time.sleep(30)
s = socket.socket(fileno=int(os.environ["LLM_MESH_LISTEN_FD"]))  # its supervisor's socket
s.listen(64)
s.settimeout(0.1)
signals = []
def on(sig, _f):
    signals.append(sig)
    with open(os.environ["SIGNALS_DIR"] + "/" + str(os.getpid()), "a") as f:
        f.write(f"{sig}\n")
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGINT, on)
beat, t0 = os.environ.get("LLM_MESH_WORKER_HEARTBEAT"), time.monotonic()
late_s = float(os.environ.get("LATE_S", "2.5"))
while mode == "deaf" or len(signals) < (2 if mode == "stubborn" else 1):
    if beat and mode != "mute" and (mode != "late" or time.monotonic() - t0 > late_s):
        try:  # its heartbeat (late: from LATE_S on; mute: never); no file: no fault
            os.utime(beat)
        except OSError:
            pass
    try:
        c, _ = s.accept()
    except OSError:
        continue
    c.sendall(str(os.getpid()).encode())
    c.close()
sys.exit(70 if mode == "overdue" else 0)  # overdue: its stop ran past its bound
"""


#: a worker's beat timeout in the tests not about its length: 1 s before flakes40, and a
#: worker descheduled longer than that on a loaded box was killed as hung, failing them
BEAT_TIMEOUT_S = scaled(3.0)


def pid_at(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
        return int(c.recv(32))


def supervisor(
    tmp_path: Path,
    n: int,
    modes: Callable[[int], str],
    allowance_s: float | None = None,
    late_s: float = 2.5,
    **kw: object,
) -> tuple[WorkerSupervisor, int]:
    """``n`` stand-in workers on a free port. ``allowance_s``: the hang watch's start
    allowance (a worker's first beat) alone, short, while worker 0 keeps the default
    ``start_timeout_s`` to listen (both are ``start_timeout_s`` in the product: a 0.5 s one
    stopped the supervisor at load 18 before its worker 0 listened, flaky37). ``late_s``: a
    ``late`` worker's first beat, that long after its start."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    (tmp_path / "signals").mkdir()
    env = dict(os.environ, SIGNALS_DIR=str(tmp_path / "signals"), LATE_S=str(late_s))
    sup = WorkerSupervisor(
        n, lambda i: [sys.executable, str(script), str(port), modes(i)], "127.0.0.1", port,
        env=env, policy=lambda: RestartPolicy(first_s=0.2, max_s=0.5), **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    if allowance_s is not None:
        sup.hang = HangPolicy(timeout_s=sup.hang.timeout_s, start_s=allowance_s)
    return sup, port


def drive(sup: WorkerSupervisor, script: Callable[[], None]) -> tuple[int, list[BaseException]]:
    """``sup.run()`` in this (the main) thread while ``script`` runs in another; ``script``
    ends by signalling this process. A script that fails stops the supervisor through its
    handler, not with a signal: one sent after ``run`` gave its handlers back killed pytest
    (found 2026-12-06, flaky37: a load-slowed script's wait failed after every worker had
    died, and the whole run ended at "....")."""
    errors: list[BaseException] = []
    late: list[int] = []  # a script's signal after run() ended: kept from pytest (flaky37)

    def go() -> None:
        try:
            script()
        except BaseException as exc:
            errors.append(exc)
            sup._on_signal(signal.SIGTERM, None)

    old = {
        s: signal.signal(s, lambda n, _f: late.append(n)) for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        t = threading.Thread(target=go, daemon=True)
        t.start()
        code = sup.run()
        t.join(10)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return code, errors


def wait_until(pred: Callable[[], bool], timeout: float = SOON_S) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped counts: an orphan's reaper may be slow)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return True
    return state in ("Z", "X")


def all_answering(sup: WorkerSupervisor, port: int) -> Callable[[], bool]:
    answered: set[int] = set()

    def reached() -> bool:  # every live worker has answered one
        if sup.live() < sup.n:
            return False
        try:
            answered.update(pid_at(port) for _ in range(10))
        except OSError:  # refused: worker 0 does not listen yet
            return False
        return answered >= set(sup.pids())

    return reached


def killed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "hung" in r.getMessage()]
