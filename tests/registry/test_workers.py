"""``registry serve --workers N``'s supervisor (``registry/workers.py``) with stand-in
workers: small Python processes that serve the socket the supervisor hands them, as a
worker does (its descriptor in ``LLM_MESH_LISTEN_FD``), and answer each connection with
their pid. No registry, no database: the e2e test
``tests/e2e/test_workers.py`` runs the real command on PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from LLM_Mesh.core.worker_restart import HangPolicy, RestartPolicy
from LLM_Mesh.registry.workers import WorkerSupervisor, connect_host
from tests.ports import free_port
from tests.waiting import SOON_S, START_S, scaled

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


def _free_port() -> int:
    return free_port()


def _pid_at(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
        return int(c.recv(32))


def _supervisor(
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
    port = _free_port()
    (tmp_path / "signals").mkdir()
    env = dict(os.environ, SIGNALS_DIR=str(tmp_path / "signals"), LATE_S=str(late_s))
    sup = WorkerSupervisor(
        n, lambda i: [sys.executable, str(script), str(port), modes(i)], "127.0.0.1", port,
        env=env, policy=lambda: RestartPolicy(first_s=0.2, max_s=0.5), **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    if allowance_s is not None:
        sup.hang = HangPolicy(timeout_s=sup.hang.timeout_s, start_s=allowance_s)
    return sup, port


def _drive(sup: WorkerSupervisor, script: Callable[[], None]) -> tuple[int, list[BaseException]]:
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


def _wait(pred: Callable[[], bool], timeout: float = SOON_S) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped counts: an orphan's reaper may be slow)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return True
    return state in ("Z", "X")


def _all_answering(sup: WorkerSupervisor, port: int) -> Callable[[], bool]:
    answered: set[int] = set()

    def reached() -> bool:  # every live worker has answered one
        if sup.live() < sup.n:
            return False
        try:
            answered.update(_pid_at(port) for _ in range(10))
        except OSError:  # refused: worker 0 does not listen yet
            return False
        return answered >= set(sup.pids())

    return reached


def test_workers_share_the_port_are_restarted_and_stop_with_the_supervisor(
    tmp_path: Path,
) -> None:
    sup, port = _supervisor(tmp_path, 3, lambda i: "serve")
    seen: dict[str, object] = {}

    def script() -> None:
        _wait(lambda: sup.live() == 3)
        first = sup.pids()
        answered: set[int] = set()

        def reached() -> bool:  # once each worker listens, connections reach every one
            answered.update(_pid_at(port) for _ in range(20))
            return answered == set(first)

        _wait(reached)
        seen["spread"] = answered
        victim = first[1]
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: sup.live() == 3 and victim not in sup.pids())
        # its replacement's signal handlers set: live is only started (found 2026-12-06,
        # flaky37: under load the SIGTERM came first and killed it, no signal written, 2 in 4)
        _wait(_all_answering(sup, port))
        seen["after"] = sup.pids()
        seen["answer_after"] = _pid_at(port)
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors, errors
    assert code == 0
    spread = seen["spread"]
    assert isinstance(spread, set) and len(spread) == 3
    after = seen["after"]
    assert isinstance(after, list) and len(after) == 3
    assert all(_gone(pid) for pid in after)  # every worker stopped
    signalled = {int(p.name): p.read_text().split() for p in (tmp_path / "signals").iterdir()}
    assert all(signalled[pid] == [str(int(signal.SIGTERM))] for pid in after)  # one SIGTERM each


def test_worker_0_alone_first_then_the_others(tmp_path: Path) -> None:
    sup, port = _supervisor(tmp_path, 3, lambda i: "serve")
    counts: list[int] = []
    real_spawn = sup._spawn

    def spawn(i: int) -> subprocess.Popen[bytes]:
        counts.append(sup.live())
        if i == 1:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass  # worker 0 listens before worker 1 is started
        return real_spawn(i)

    sup._spawn = spawn  # type: ignore[method-assign]

    def script() -> None:
        _wait(lambda: sup.live() == 3)
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 0
    assert counts == [0, 1, 2]


def test_a_worker_0_that_cannot_start_stops_everything_with_its_exit_code(
    tmp_path: Path,
) -> None:
    sup, _port = _supervisor(tmp_path, 3, lambda i: "fail")
    assert sup.run() == 3
    assert sup.live() == 0 and sum(p is not None for p in sup.procs) == 1  # no other started


def test_a_worker_0_that_never_listens_is_stopped_after_the_start_timeout(
    tmp_path: Path,
) -> None:
    sup, _port = _supervisor(tmp_path, 2, lambda i: "slow", start_timeout_s=1.0,
                             stop_timeout_s=1.0)  # fmt: skip
    t0 = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - t0 < 10
    assert sup.live() == 0


def test_a_second_signal_is_passed_on_and_a_worker_that_will_not_stop_is_killed(
    tmp_path: Path,
) -> None:
    sup, port = _supervisor(tmp_path, 2, lambda i: "stubborn" if i == 0 else "deaf",
                            stop_timeout_s=2.0)  # fmt: skip
    pids: list[int] = []
    stopped_at: list[float] = []

    def script() -> None:
        _wait(_all_answering(sup, port))  # their signal handlers set (live: only started)
        pids.extend(sup.pids())
        stopped_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)
        _wait(lambda: len(list((tmp_path / "signals").iterdir())) == 2)
        os.kill(os.getpid(), signal.SIGINT)

    code, errors = _drive(sup, script)
    assert not errors and code == 70  # a worker killed: a stop past its bound, as overdue
    assert all(_gone(pid) for pid in pids)
    stubborn, deaf = pids
    assert (tmp_path / "signals" / str(stubborn)).read_text().split() == ["15", "15"]
    assert len((tmp_path / "signals" / str(deaf)).read_text().split()) == 2
    # the deaf one killed at stop_timeout_s (2 s) after the stop, not at the workers' start
    assert time.monotonic() - stopped_at[0] < 12


def test_without_a_stop_budget_a_worker_that_stops_slowly_is_never_killed(
    tmp_path: Path,
) -> None:
    # LLM_MESH_REGISTRY_SHUTDOWN_S=0 (no bound): the supervisor waits for its workers as
    # long as they drain (found 2026-12-04: it killed them 10 s after the signal). Once
    # signalled the clock runs an hour a reading: any deadline would have passed at once.
    hours = itertools.count()

    def clock() -> float:
        return time.monotonic() + (3600.0 * next(hours) if sup.signals else 0.0)

    sup, port = _supervisor(tmp_path, 1, lambda i: "stubborn", stop_timeout_s=None,
                            clock=clock)  # fmt: skip
    pids: list[int] = []

    def script() -> None:
        _wait(_all_answering(sup, port))  # its signal handlers set (not a SIGTERM too early)
        pids.extend(sup.pids())
        os.kill(os.getpid(), signal.SIGTERM)
        _wait(lambda: len(list((tmp_path / "signals").iterdir())) == 1)
        time.sleep(1.0)  # the supervisor's stop loop runs meanwhile
        assert sup.live() == 1, "killed without a stop budget"
        os.kill(os.getpid(), signal.SIGTERM)  # the second signal: it stops

    old = signal.signal(signal.SIGTERM, lambda _s, _f: None)  # a stray one: not pytest's end
    try:
        code, errors = _drive(sup, script)
    finally:
        signal.signal(signal.SIGTERM, old)
        for proc in sup.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not errors and code == 0, errors
    (pid,) = pids
    assert (tmp_path / "signals" / str(pid)).read_text().split() == ["15", "15"]  # not killed


def test_a_worker_whose_stop_ran_past_its_bound_makes_the_exit_status_70(
    tmp_path: Path,
) -> None:
    # as a lone registry's (docs/operations.md, exit statuses; found 2026-12-04: the
    # supervisor exited 0 whatever its workers' stops had been)
    sup, port = _supervisor(tmp_path, 2, lambda i: "overdue" if i == 1 else "serve")

    def script() -> None:
        _wait(_all_answering(sup, port))  # their signal handlers set (live: only started)
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 70


@pytest.mark.parametrize(("n", "said"), [(1, ["1 process on", "stopping 1 worker"]),
                                         (2, ["2 processes on", "stopping 2 workers"])])  # fmt: skip
def test_the_supervisor_says_its_counts_in_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, n: int, said: list[str]
) -> None:
    # found 2026-12-04: "stopping the 1 workers", "registry workers: 1 processes on ..."
    sup, _port = _supervisor(tmp_path, n, lambda i: "serve")

    def script() -> None:
        _wait(lambda: sup.live() == n)
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = _drive(sup, script)
    assert not errors and code == 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert all(s in text for s in said), text
    assert "1 workers" not in text and "1 processes" not in text, text


def test_workers_are_in_their_own_process_groups(tmp_path: Path) -> None:
    sup, _port = _supervisor(tmp_path, 2, lambda i: "serve")
    groups: list[int] = []

    def script() -> None:
        _wait(lambda: sup.live() == 2)
        groups.extend(os.getpgid(pid) for pid in sup.pids())
        groups.append(sup.pids()[0])
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 0
    assert groups[0] == groups[2] and os.getpgid(0) not in groups[:2]


@pytest.mark.parametrize(("host", "seen"), [("0.0.0.0", "127.0.0.1"), ("::", "::1"),
                                            ("", "127.0.0.1"), ("10.0.0.5", "10.0.0.5")])  # fmt: skip
def test_connect_host(host: str, seen: str) -> None:
    assert connect_host(host) == seen


def test_fewer_than_one_worker_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerSupervisor(0, lambda i: [], "127.0.0.1", 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_supervisor_killed_outright_leaves_no_worker_serving(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (tmp_path / "signals").mkdir()
    port = _free_port()
    runner = (
        "import sys\n"
        "from LLM_Mesh.registry.workers import WorkerSupervisor\n"
        f"s = WorkerSupervisor(2, lambda i: [sys.executable, {str(script)!r}, '{port}', 'serve'],"
        f" '127.0.0.1', {port})\n"
        "sys.exit(s.run())\n"
    )
    # TMPDIR: the heartbeat directory of a supervisor killed outright stays (in tmp_path)
    env = dict(os.environ, SIGNALS_DIR=str(tmp_path / "signals"), TMPDIR=str(tmp_path))
    sup = subprocess.Popen([sys.executable, "-c", runner], env=env)
    try:
        pids: set[int] = set()

        def two_answer() -> bool:
            try:
                pids.update(_pid_at(port) for _ in range(20))
            except OSError:
                return False
            return len(pids) == 2

        _wait(two_answer, START_S)  # (the supervisor's imports)
        sup.kill()
        sup.wait(scaled(SOON_S))
        _wait(lambda: all(_gone(pid) for pid in pids))
        with pytest.raises(OSError):
            _pid_at(port)
    finally:
        if sup.poll() is None:
            sup.kill()


def _killed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "hung" in r.getMessage()]


def test_a_hung_worker_is_killed_and_replaced_within_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # found 2026-12-04 (docs/deploy.md): a SIGSTOPped worker was never seen, and still took
    # about 1 in N of the port's new connections, answering none
    # the timeout 1 s before flakes40: the live worker, descheduled that long, was killed too
    sup, port = _supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}
    stopped: list[int] = []

    def script() -> None:
        _wait(lambda: sup.live() == 2 and None not in sup.beat_at)  # both beating
        keep, victim = sup.pids()
        os.kill(victim, signal.SIGSTOP)
        stopped.append(victim)
        t0 = time.monotonic()
        _wait(lambda: sup.live() == 2 and victim not in sup.pids())
        seen["replaced_after"] = time.monotonic() - t0
        seen["kept"] = keep in sup.pids()
        seen["answers"] = {_pid_at(port) for _ in range(20)}  # none waits on the stopped one
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
            code, errors = _drive(sup, script)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not errors and code == 0, errors
    replaced_after = seen["replaced_after"]
    assert isinstance(replaced_after, float)
    assert BEAT_TIMEOUT_S < replaced_after < BEAT_TIMEOUT_S + 4.0  # timeout + margin
    assert seen["kept"] is True  # the live one left alone
    assert _gone(stopped[0])
    (line,) = _killed_lines(caplog)
    said = rf"worker 1 \(pid {stopped[0]}\) hung: no heartbeat for \d+ s "
    said += rf"\(--worker-timeout {BEAT_TIMEOUT_S:g} s\)"
    assert re.fullmatch(said + ": killing it", line), line
    said = [r.getMessage() for r in caplog.records]
    assert f"worker 1 (pid {stopped[0]}) exited with code -9: restarting it in 0 s" in said, said


def test_a_slow_starting_worker_is_not_killed_before_its_first_beat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # worker 1 beats only from 1.5 s past the timeout on (migrations, keys): longer than the
    # timeout, within the start allowance (its start included). The timeout was 1 s, the
    # first beat at 2.5 s, the allowance 6 s before flakes40: a worker descheduled 1 s at
    # load was killed as hung, or a worker 1 slow to start past the allowance
    late = BEAT_TIMEOUT_S + 1.5
    sup, _port = _supervisor(tmp_path, 2, lambda i: "late" if i == 1 else "serve",
                             worker_timeout_s=BEAT_TIMEOUT_S, allowance_s=late + scaled(SOON_S),
                             late_s=late)  # fmt: skip
    pids: list[list[int]] = []

    def script() -> None:
        _wait(lambda: sup.live() == 2)
        pids.append(sup.pids())
        _wait(lambda: sup.beat_at[1] is not None)
        time.sleep(BEAT_TIMEOUT_S + 0.5)  # beating now: kept past a timeout
        pids.append(sup.pids())
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert pids[0] == pids[1] and not _killed_lines(caplog)


def test_a_worker_that_never_beats_is_killed_after_the_start_allowance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the allowance longer than the timeout (worker 0's, 1 s before flakes40: descheduled
    # that long at load, it was killed too)
    allowance = BEAT_TIMEOUT_S + 2.0
    sup, _port = _supervisor(tmp_path, 2, lambda i: "mute" if i == 1 else "serve",
                             worker_timeout_s=BEAT_TIMEOUT_S, allowance_s=allowance)  # fmt: skip
    seen: list[float] = []

    def script() -> None:
        _wait(lambda: sup.live() == 2 and sup.started_at[1] > 0)  # (set just after)
        # from its spawn: this script's own look may come late at load (flakes40)
        mute, t0 = sup.pids()[1], sup.started_at[1]
        _wait(lambda: sup.live() == 2 and mute not in sup.pids())
        seen.append(time.monotonic() - t0)
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert allowance < seen[0] < allowance + 4.0, seen
    (line,) = _killed_lines(caplog)
    said = re.search(r"no heartbeat for (\d+) s since its start", line)  # as long as it was
    assert line.startswith("worker 1 (pid ") and said, line  # (3 s exactly before flakes40)
    assert allowance - 0.5 <= int(said[1]) < allowance + 4.0, line


def test_with_a_worker_timeout_of_0_a_silent_worker_is_left_alone(tmp_path: Path) -> None:
    sup, _port = _supervisor(tmp_path, 1, lambda i: "mute", worker_timeout_s=0.0,
                             allowance_s=0.5)  # fmt: skip
    pids: list[list[int]] = []

    def script() -> None:
        _wait(lambda: sup.live() == 1)
        pids.append(sup.pids())
        time.sleep(2.0)
        pids.append(sup.pids())
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert pids[0] == pids[1]


def test_the_heartbeat_files_are_private_and_removed_at_the_end(tmp_path: Path) -> None:
    sup, _port = _supervisor(tmp_path, 2, lambda i: "serve")
    seen: dict[str, object] = {}

    def script() -> None:
        _wait(lambda: sup.live() == 2 and None not in sup.beat_at)
        assert sup.beat_dir is not None
        seen["dir"] = sup.beat_dir
        seen["mode"] = os.stat(sup.beat_dir).st_mode & 0o777
        seen["files"] = sorted(os.listdir(sup.beat_dir))
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert seen["mode"] == 0o700 and seen["files"] == ["worker-0", "worker-1"]
    assert not os.path.exists(str(seen["dir"]))


def test_a_removed_heartbeat_file_is_made_again_and_its_worker_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04, review: a heartbeat file removed (a cleaner of the temporary
    directory, an operator) was read as silence: its healthy worker was killed."""
    sup, _port = _supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}

    def script() -> None:
        _wait(lambda: sup.live() == 2 and None not in sup.beat_at)
        before = sup.pids()
        assert sup.beat_dir is not None
        os.remove(os.path.join(sup.beat_dir, "worker-1"))
        time.sleep(2 * BEAT_TIMEOUT_S)  # two timeouts (1 s ones, three, before flakes40)
        seen["pids"] = (before, sup.pids())
        seen["there"] = os.path.exists(os.path.join(sup.beat_dir, "worker-1"))
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    before, after = seen["pids"]  # type: ignore[misc]
    assert before == after and not _killed_lines(caplog)
    assert seen["there"] is True


def test_a_removed_heartbeat_directory_stops_neither_the_supervisor_nor_a_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04, review: with the directory removed, every worker was killed as
    hung, and the next start raised FileNotFoundError out of the supervisor (the
    registry down)."""
    sup, _port = _supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}

    def script() -> None:
        _wait(lambda: sup.live() == 2 and None not in sup.beat_at)
        keep, victim = sup.pids()
        assert sup.beat_dir is not None
        shutil.rmtree(sup.beat_dir)
        os.kill(victim, signal.SIGKILL)  # started again: its file made again
        _wait(lambda: sup.live() == 2 and victim not in sup.pids())
        time.sleep(2 * BEAT_TIMEOUT_S)  # two timeouts (1 s ones, three, before flakes40)
        seen["kept"] = keep in sup.pids() and sup.live() == 2
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert seen["kept"] is True and not _killed_lines(caplog)


def test_a_heartbeat_file_is_made_again_only_in_a_private_directory(tmp_path: Path) -> None:
    from LLM_Mesh.registry.workers import _remade

    gone = tmp_path / "gone"
    assert _remade(str(gone / "worker-0")) is not None  # directory and file made again
    assert os.stat(gone).st_mode & 0o777 == 0o700 and (gone / "worker-0").exists()
    shared = tmp_path / "shared"  # another's meanwhile (or this user's, open to others)
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert _remade(str(shared / "worker-0")) is None and not (shared / "worker-0").exists()
    (gone / "worker-1").symlink_to(tmp_path / "elsewhere")
    assert _remade(str(gone / "worker-1")) is None  # a link is not followed
    assert not (tmp_path / "elsewhere").exists()


def test_a_stopped_worker_takes_no_new_connection(tmp_path: Path) -> None:
    # one socket, one accept queue: the stopped worker accepts nothing, the others take
    # every connection (before, with SO_REUSEPORT, a queue each: about 1 in 3 hung in the
    # stopped one's until the watchdog, off here, killed it)
    sup, port = _supervisor(tmp_path, 3, lambda i: "serve", worker_timeout_s=0.0)
    seen: dict[str, object] = {}
    stopped: list[int] = []

    def script() -> None:
        _wait(_all_answering(sup, port))
        victim = sup.pids()[1]
        os.kill(victim, signal.SIGSTOP)
        stopped.append(victim)
        answers: list[int | str] = []
        for _ in range(30):  # a fresh connection each
            try:
                answers.append(_pid_at(port))  # within its 2 s
            except OSError as exc:
                answers.append(repr(exc))
        seen["answers"] = answers
        seen["others"] = set(sup.pids()) - {victim}
        os.kill(victim, signal.SIGCONT)  # it stops as asked
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        code, errors = _drive(sup, script)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not errors and code == 0, errors
    answers, others = seen["answers"], seen["others"]
    assert isinstance(answers, list) and isinstance(others, set)
    assert all(a in others for a in answers), answers  # all 30 answered, none by the stopped


def test_connections_waiting_when_a_worker_dies_are_kept(tmp_path: Path) -> None:
    # both workers stopped, 10 connections wait in the queue; one worker is killed, the
    # other resumes: it (and the killed one's replacement) answers all 10 (before, the
    # killed one's own queue was reset with it: about half of them)
    sup, port = _supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=0.0)
    seen: dict[str, object] = {}
    stopped: list[int] = []

    def script() -> None:
        _wait(_all_answering(sup, port))
        victim, other = sup.pids()
        for pid in (victim, other):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
        try:
            time.sleep(0.2)
            os.kill(victim, signal.SIGKILL)
            time.sleep(0.2)
            os.kill(other, signal.SIGCONT)
            answers: list[bytes | str] = []
            for c in waiting:
                try:
                    answers.append(c.recv(32))
                except OSError as exc:
                    answers.append(repr(exc))
        finally:
            for c in waiting:
                c.close()
        seen["answers"] = answers
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        code, errors = _drive(sup, script)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not errors and code == 0, errors
    answers = seen["answers"]
    assert isinstance(answers, list)
    assert all(isinstance(a, bytes) and a.isdigit() for a in answers), answers


def test_the_supervisor_binds_once_and_a_taken_port_starts_no_worker(tmp_path: Path) -> None:
    from LLM_Mesh.server_process import PortInUse

    sup, port = _supervisor(tmp_path, 2, lambda i: "serve")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use"):
            sup.run()
    assert sup.procs == [None, None]  # no worker started


def _listening_sockets(pid: int) -> int:
    """How many of ``pid``'s open file descriptors are listening TCP sockets."""
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for row in list(f)[1:]:
                cols = row.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    listening.add(f"socket:[{cols[9]}]")
    fds = os.listdir(f"/proc/{pid}/fd")
    return sum(os.readlink(f"/proc/{pid}/fd/{f}") in listening for f in fds)


def test_every_worker_serves_the_supervisors_one_socket(tmp_path: Path) -> None:
    # the same open socket (one inode) in the supervisor and in each worker, restarted
    # ones too; none of them binds a socket of its own
    sup, port = _supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=0.0)
    seen: dict[str, object] = {}

    def inode(pid: int, fd: int) -> str:
        return os.readlink(f"/proc/{pid}/fd/{fd}")

    def script() -> None:
        _wait(_all_answering(sup, port))
        assert sup.sock is not None
        fd = sup.sock.fileno()
        mine = inode(os.getpid(), fd)
        victim = sup.pids()[0]
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: sup.live() == 2 and victim not in sup.pids())
        _wait(_all_answering(sup, port))
        seen["same"] = [inode(pid, fd) == mine for pid in sup.pids()]
        # listening sockets only: a connection the worker accepted from the probes above
        # may still be open (CI, 2026-12-06: "sockets": [2, 1])
        seen["sockets"] = [_listening_sockets(pid) for pid in sup.pids()]
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = _drive(sup, script)
    assert not errors and code == 0, errors
    assert seen["same"] == [True, True] and seen["sockets"] == [1, 1], seen
    assert sup.sock is None  # closed: bound by run, which closed it
