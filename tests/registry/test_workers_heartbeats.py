"""The supervisor's hang watch (``registry/workers.py``, ``core/worker_restart.HangPolicy``)
with stand-in workers (``stand_in_workers.py``): a worker whose heartbeat file stops
changing is killed and replaced past ``--worker-timeout``, one slow to beat first is given
the start allowance, a timeout of 0 watches none; the heartbeat files are private, made
again when removed, and removed at the end."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.registry.stand_in_workers import (
    BEAT_TIMEOUT_S,
    drive,
    gone,
    killed_lines,
    pid_at,
    supervisor,
    wait_until,
)
from tests.waiting import SOON_S, scaled


def test_a_hung_worker_is_killed_and_replaced_within_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # found 2026-12-04 (docs/deploy.md): a SIGSTOPped worker was never seen, and still took
    # about 1 in N of the port's new connections, answering none
    # the timeout 1 s before flakes40: the live worker, descheduled that long, was killed too
    sup, port = supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}
    stopped: list[int] = []

    def script() -> None:
        wait_until(lambda: sup.live() == 2 and None not in sup.beat_at)  # both beating
        keep, victim = sup.pids()
        os.kill(victim, signal.SIGSTOP)
        stopped.append(victim)
        t0 = time.monotonic()
        wait_until(lambda: sup.live() == 2 and victim not in sup.pids())
        seen["replaced_after"] = time.monotonic() - t0
        seen["kept"] = keep in sup.pids()
        seen["answers"] = {pid_at(port) for _ in range(20)}  # none waits on the stopped one
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
            code, errors = drive(sup, script)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not errors and code == 0, errors
    replaced_after = seen["replaced_after"]
    assert isinstance(replaced_after, float)
    assert BEAT_TIMEOUT_S < replaced_after < BEAT_TIMEOUT_S + 4.0  # timeout + margin
    assert seen["kept"] is True  # the live one left alone
    assert gone(stopped[0])
    (line,) = killed_lines(caplog)
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
    sup, _port = supervisor(tmp_path, 2, lambda i: "late" if i == 1 else "serve",
                             worker_timeout_s=BEAT_TIMEOUT_S, allowance_s=late + scaled(SOON_S),
                             late_s=late)  # fmt: skip
    pids: list[list[int]] = []

    def script() -> None:
        wait_until(lambda: sup.live() == 2)
        pids.append(sup.pids())
        wait_until(lambda: sup.beat_at[1] is not None)
        time.sleep(BEAT_TIMEOUT_S + 0.5)  # beating now: kept past a timeout
        pids.append(sup.pids())
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    assert pids[0] == pids[1] and not killed_lines(caplog)


def test_a_worker_that_never_beats_is_killed_after_the_start_allowance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the allowance longer than the timeout (worker 0's, 1 s before flakes40: descheduled
    # that long at load, it was killed too)
    allowance = BEAT_TIMEOUT_S + 2.0
    sup, _port = supervisor(tmp_path, 2, lambda i: "mute" if i == 1 else "serve",
                             worker_timeout_s=BEAT_TIMEOUT_S, allowance_s=allowance)  # fmt: skip
    seen: list[float] = []

    def script() -> None:
        wait_until(lambda: sup.live() == 2 and sup.started_at[1] > 0)  # (set just after)
        # from its spawn: this script's own look may come late at load (flakes40)
        mute, t0 = sup.pids()[1], sup.started_at[1]
        wait_until(lambda: sup.live() == 2 and mute not in sup.pids())
        seen.append(time.monotonic() - t0)
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    assert allowance < seen[0] < allowance + 4.0, seen
    (line,) = killed_lines(caplog)
    said = re.search(r"no heartbeat for (\d+) s since its start", line)  # as long as it was
    assert line.startswith("worker 1 (pid ") and said, line  # (3 s exactly before flakes40)
    assert allowance - 0.5 <= int(said[1]) < allowance + 4.0, line


def test_with_a_worker_timeout_of_0_a_silent_worker_is_left_alone(tmp_path: Path) -> None:
    sup, _port = supervisor(tmp_path, 1, lambda i: "mute", worker_timeout_s=0.0,
                             allowance_s=0.5)  # fmt: skip
    pids: list[list[int]] = []

    def script() -> None:
        wait_until(lambda: sup.live() == 1)
        pids.append(sup.pids())
        time.sleep(2.0)
        pids.append(sup.pids())
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    assert pids[0] == pids[1]


def test_the_heartbeat_files_are_private_and_removed_at_the_end(tmp_path: Path) -> None:
    sup, _port = supervisor(tmp_path, 2, lambda i: "serve")
    seen: dict[str, object] = {}

    def script() -> None:
        wait_until(lambda: sup.live() == 2 and None not in sup.beat_at)
        assert sup.beat_dir is not None
        seen["dir"] = sup.beat_dir
        seen["mode"] = os.stat(sup.beat_dir).st_mode & 0o777
        seen["files"] = sorted(os.listdir(sup.beat_dir))
        os.kill(os.getpid(), signal.SIGTERM)

    code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    assert seen["mode"] == 0o700 and seen["files"] == ["worker-0", "worker-1"]
    assert not os.path.exists(str(seen["dir"]))


def test_a_removed_heartbeat_file_is_made_again_and_its_worker_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04, review: a heartbeat file removed (a cleaner of the temporary
    directory, an operator) was read as silence: its healthy worker was killed."""
    sup, _port = supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}

    def script() -> None:
        wait_until(lambda: sup.live() == 2 and None not in sup.beat_at)
        before = sup.pids()
        assert sup.beat_dir is not None
        os.remove(os.path.join(sup.beat_dir, "worker-1"))
        time.sleep(2 * BEAT_TIMEOUT_S)  # two timeouts (1 s ones, three, before flakes40)
        seen["pids"] = (before, sup.pids())
        seen["there"] = os.path.exists(os.path.join(sup.beat_dir, "worker-1"))
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    before, after = seen["pids"]  # type: ignore[misc]
    assert before == after and not killed_lines(caplog)
    assert seen["there"] is True


def test_a_removed_heartbeat_directory_stops_neither_the_supervisor_nor_a_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04, review: with the directory removed, every worker was killed as
    hung, and the next start raised FileNotFoundError out of the supervisor (the
    registry down)."""
    sup, _port = supervisor(tmp_path, 2, lambda i: "serve", worker_timeout_s=BEAT_TIMEOUT_S)
    seen: dict[str, object] = {}

    def script() -> None:
        wait_until(lambda: sup.live() == 2 and None not in sup.beat_at)
        keep, victim = sup.pids()
        assert sup.beat_dir is not None
        shutil.rmtree(sup.beat_dir)
        os.kill(victim, signal.SIGKILL)  # started again: its file made again
        wait_until(lambda: sup.live() == 2 and victim not in sup.pids())
        time.sleep(2 * BEAT_TIMEOUT_S)  # two timeouts (1 s ones, three, before flakes40)
        seen["kept"] = keep in sup.pids() and sup.live() == 2
        os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level("INFO", logger="LLM_Mesh.registry.workers"):
        code, errors = drive(sup, script)
    assert not errors and code == 0, errors
    assert seen["kept"] is True and not killed_lines(caplog)


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
