"""The long-running commands as an operator meets them, real processes on loopback (the
``sim`` engine): what they say and how they exit when they cannot start, and when they are
stopped (docs/operations.md, "Stopping and exit statuses")."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.waiting import SOON_S, START_S, scaled

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLM_MESH_HOME": str(home),
           "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}  # fmt: skip
    for name in ("LLM_MESH_DATABASE_URL", "LLM_MESH_REGISTRY_URL"):
        env.pop(name, None)
    return env


def _cli(home: Path, *args: str, timeout: float = START_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", *args],
        env=_env(home), capture_output=True, text=True, timeout=scaled(timeout),
    )  # fmt: skip


def _one_line_error(out: subprocess.CompletedProcess[str], *says: str) -> str:
    """Exit 1, and the error is one line on stderr that says each of ``says``: no
    traceback, no wrapped message."""
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "╭" not in text, text[-3000:]
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    for part in says:
        assert part in line, line
    return line


def test_registry_serve_on_a_taken_port_says_so_at_once(tmp_path: Path) -> None:
    """Found 2026-12-03: the registry ran its migrations, made its keys (printing a new
    admin key that no registry would serve), started settlement, then stopped with
    uvicorn's ``[Errno 98] error while attempting to bind`` (exit 3)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _cli(tmp_path / "home", "registry", "serve", "--port", str(port))
    _one_line_error(out, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert not (tmp_path / "home" / "admin.key").exists()  # said before anything started
    assert not (tmp_path / "home" / "registry.db").exists()


@pytest.mark.parametrize("which", ["--registry-port", "--node-port"])
def test_up_on_a_taken_port_says_nothing_of_stopping(tmp_path: Path, which: str) -> None:
    """``up`` that cannot start (a port taken) says why, and not that it stops a mesh it
    never started. Found 2026-12-03: the error, then "stopping the local mesh…"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--registry-port": str(free_port()), "--node-port": str(free_port())}
        ports[which] = str(port)
        flags = [x for flag_value in ports.items() for x in flag_value]
        out = _cli(tmp_path / "home", "up", "--engine", "sim", *flags)
    _one_line_error(out, f"port {port} on 127.0.0.1 is already in use")
    assert "stopping" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "stopped" not in out.stdout + out.stderr


def _command(name: str) -> list[str]:
    """``name``'s long-running command line on free loopback ports, the ``sim`` engine."""
    a, b = str(free_port()), str(free_port())
    return {
        "registry-serve": ["registry", "serve", "--port", a],
        "node-start": ["node", "start", "--engine", "sim", "--model", "m", "--port", a],
        "up": ["up", "--engine", "sim", "--registry-port", a, "--node-port", b],
        "demo": ["demo", "--engine", "sim", "--registry-port", a, "--node-port", b],
    }[name]


@pytest.mark.parametrize("name", ["registry-serve", "node-start", "up", "demo"])
def test_a_state_directory_that_cannot_be_written_is_one_line(tmp_path: Path, name: str) -> None:
    """Found 2026-12-03: each command died with a rich traceback of ``Path.mkdir``
    (``PermissionError``, ``NotADirectoryError``) when ``$LLM_MESH_HOME`` could not be made."""
    (tmp_path / "a-file").write_text("not a folder\n")
    home = tmp_path / "a-file" / "home"
    out = _cli(home, *_command(name))
    _one_line_error(out, f"the state directory {home} cannot be written", "LLM_MESH_HOME")


@pytest.mark.parametrize("kind", ["a-folder", "not-a-database"])
def test_a_database_file_it_cannot_use_is_one_line_before_serving(
    tmp_path: Path, kind: str
) -> None:
    """Found 2026-12-03: ``sqlite3.OperationalError: unable to open database file`` (or
    ``file is not a database``) as a 60-line traceback from the app's start-up, then
    uvicorn's ``Application startup failed`` and exit 3."""
    home = tmp_path / "home"
    home.mkdir()
    db = home / "registry.db"
    if kind == "a-folder":
        db.mkdir()
    else:
        db.write_text("these are not SQLite pages\n" * 100)
    out = _cli(home, "registry", "serve", "--port", str(free_port()))
    line = _one_line_error(out, str(db), "--database-url")
    if kind == "a-folder":  # (small42: the place check, first, says it: its path once)
        assert "is not a regular file" in line and "name a file" in line, line
        assert line.count(str(db)) == 1, line
    else:
        assert "not a database" in line, line
    assert "Application startup" not in out.stderr  # said before uvicorn started


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _kill_leftovers(*ports: int) -> None:
    """Children a broken stop left behind (their command lines name their ports)."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"LLM_Mesh.cli" in argv and any(str(p).encode() in argv for p in ports):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_demo_stopped_by_sigterm_stops_its_registry_and_node(tmp_path: Path) -> None:
    """Found 2026-12-03: SIGTERM (``kill``, a CI job's timeout) killed ``llm-mesh demo`` at
    once (exit -15) and its registry and node, in sessions of their own, ran on, holding
    the ports and the database. Now it stops them as Ctrl-C does and exits 143; a second
    signal while it stops them says the stop goes on."""
    home, reg, node = tmp_path / "home", free_port(), free_port()
    cmd = ["demo", "--engine", "sim", "--registry-port", str(reg), "--node-port", str(node)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "LLM_Mesh.cli", *cmd], env=_env(home),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(START_S)
        while not (home / "logs" / "node.log").exists():  # both children started
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        registry_log = home / "logs" / "registry.log"  # the registry stops last
        while "Shutting down" not in registry_log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)  # again: the stop goes on
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 128 + signal.SIGTERM, out
        assert "interrupted (SIGTERM): the local mesh stopped." in out, out
        assert "SIGTERM again: already stopping (the node within 15 s" in out, out
        assert "Traceback" not in out, out
        assert not _listening(reg) and not _listening(node)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_leftovers(reg, node)


@pytest.mark.parametrize(
    ("name", "signals"),
    [
        ("registry-serve", [signal.SIGTERM]),
        ("registry-serve", [signal.SIGINT, signal.SIGINT]),
        ("node-start", [signal.SIGTERM]),
        ("node-start", [signal.SIGINT]),
    ],
    ids=["registry-sigterm", "registry-ctrl-c-twice", "node-sigterm", "node-ctrl-c"],
)
def test_a_stop_by_signal_finishes_the_apps_stop_and_exits_0(
    tmp_path: Path, name: str, signals: list[int]
) -> None:
    """Found 2026-12-03: after a clean stop uvicorn raised the signal again: SIGTERM killed
    the process (exit -15, 143 in a shell), Ctrl-C exited 130 from ``node start`` but 0 from
    ``registry serve``; a second Ctrl-C skipped the app's stop and printed a traceback. Now
    every stop that finishes exits 0 (docs/operations.md, "Stopping and exit statuses")."""
    log = tmp_path / "out.log"
    command = _command(name)
    if name == "node-start":  # no registry there: the node says so and serves on
        command += ["--registry", f"http://127.0.0.1:{free_port()}"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *command], env=_env(tmp_path / "home"),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(START_S)
        while "Uvicorn running" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        for signum in signals:
            proc.send_signal(signum)
            time.sleep(0.05)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, (proc.returncode, text[-3000:])
    assert "Application shutdown complete" in text, text[-3000:]  # the app's own stop ran
    assert "Traceback" not in text, text[-3000:]


# `node start` whose engine takes 20 s to build (a cold model load, in a thread)
_SLOW_LOAD = textwrap.dedent(
    """
    import sys, time
    import LLM_Mesh.node.service as service

    _build = service.build_engine

    def slow(*args, **kwargs):
        print("LOADING", flush=True)
        time.sleep(120)
        return _build(*args, **kwargs)

    service.build_engine = slow
    from LLM_Mesh.cli.main import main
    sys.argv[0] = "llm-mesh"
    main()
    """
)


def test_ctrl_c_while_the_model_loads_exits_at_once(tmp_path: Path) -> None:
    """Found 2026-12-03: Ctrl-C while ``node start`` loaded its model said nothing and
    exited only when the load was done (Python waits for the loading thread at exit: minutes
    for a cold load); a second Ctrl-C printed a traceback and waited still."""
    cmd = [*_command("node-start"), "--registry", f"http://127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_LOAD, *cmd], env=_env(tmp_path / "home"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        while "LOADING" not in proc.stdout.readline():
            assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    # at once, not after the load's 120 s: a margin for a loaded box (was 5 s of a 20 s load)
    assert took < 30 and proc.returncode == 0, (took, proc.returncode, out)
    assert "SIGINT while loading the model: exiting now" in out, out
    assert "Traceback" not in out, out


def test_up_says_so_when_signalled_again_while_stopping(tmp_path: Path) -> None:
    """Found 2026-12-03: a second Ctrl-C while ``up`` stopped its children was ignored
    without a word (the stop may take the registry's bound, 83 s); now it says that the
    stop goes on and how long it may take, and the stop finishes (exit 0)."""
    cmd = _command("up")
    out_path = tmp_path / "out.log"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *cmd], env=_env(tmp_path / "home"),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(START_S)
        while "Ctrl-C stops it." not in out_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + scaled(
            SOON_S
        )  # fails, not hangs, if ``up`` never says it stops
        while "stopping the local mesh" not in out_path.read_text():
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.wait(40)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_leftovers(int(cmd[4]), int(cmd[6]))
    text = out_path.read_text()
    assert proc.returncode == 0, text
    assert "SIGINT again: already stopping (the node within 15 s, the registry within 83 s)" in (
        " ".join(text.split())
    ), text
    assert text.rstrip().endswith("stopped."), text


def test_a_postgresql_database_it_cannot_reach_is_one_line(tmp_path: Path) -> None:
    """Found 2026-12-03: a PostgreSQL server that refused (down, a wrong port) was a
    40-line ``ConnectionRefusedError`` traceback from the app's start-up, then uvicorn's
    ``Application startup failed`` and exit 3."""
    port = free_port()  # nothing listens there
    url = f"postgresql://mesh:hunter2@127.0.0.1:{port}/mesh"
    out = _cli(tmp_path / "home", "registry", "serve", "--port", str(free_port()),
               "--database-url", url)  # fmt: skip
    line = _one_line_error(
        out, f"cannot reach the database at postgresql+asyncpg://mesh:***@127.0.0.1:{port}/mesh"
    )
    assert "hunter2" not in out.stdout + out.stderr, line  # the password is not said
    assert "Application startup" not in out.stderr
