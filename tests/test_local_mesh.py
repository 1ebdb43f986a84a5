"""LocalMesh's stop: node first, SIGTERM, SIGKILL only after a grace the node's own
shutdown bound fits in (``LLM_MESH_NODE_SHUTDOWN_S``)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh import local_mesh
from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import STOP_GRACE_S, LocalMesh, LocalMeshError, _Child, rotate_log


class _Proc:
    def __init__(self, name: str, seen: list[tuple[str, Any]]) -> None:
        self.name, self.seen, self.code = name, seen, None

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.seen.append((self.name, sig))

    def wait(self, timeout: float | None = None) -> int:
        self.seen.append((self.name, timeout))
        self.code = 0
        return 0


def _stop(settings: Settings, tmp_path: Path, **kw: Any) -> list[tuple[str, Any]]:
    mesh = LocalMesh(settings)
    seen: list[tuple[str, Any]] = []
    for name in ("registry", "node"):
        proc: subprocess.Popen[bytes] = _Proc(name, seen)  # type: ignore[assignment]
        mesh._children.append(_Child(name, proc, tmp_path / f"{name}.log", io.BytesIO()))
    mesh.stop(**kw)
    return seen


def test_the_node_stops_first_and_gets_15_s(tmp_path: Path) -> None:
    seen = _stop(Settings(home=tmp_path, registry_shutdown_s=0.0), tmp_path)
    assert seen == [
        ("node", signal.SIGTERM), ("node", STOP_GRACE_S),
        ("registry", signal.SIGTERM), ("registry", STOP_GRACE_S),
    ]  # fmt: skip
    assert Settings(home=tmp_path).node_shutdown_s + 3.0 <= STOP_GRACE_S  # the default fits


def test_the_registry_gets_its_own_stop_bound_and_3_s(tmp_path: Path) -> None:
    """``up``'s registry inherits the registry's stop bound (``LLM_MESH_REGISTRY_SHUTDOWN_S``,
    default 80 s; ``registry/stop_watchdog.py``): it is passed on, and waited for before
    SIGKILL, so a registry stuck in its stop exits by it and logs what was stuck. Until
    2026-12-03 it was killed at 15 s (its settlement's stop may take 60 s)."""
    settings = Settings(home=tmp_path)
    seen = _stop(settings, tmp_path)
    assert seen[:2] == [("node", signal.SIGTERM), ("node", STOP_GRACE_S)]
    assert seen[3] == ("registry", settings.registry_shutdown_s + 3.0) == ("registry", 83.0)
    env = LocalMesh(Settings(home=tmp_path, registry_shutdown_s=20.0))._env()
    assert env["LLM_MESH_REGISTRY_SHUTDOWN_S"] == "20.0"


def test_a_longer_node_shutdown_gets_a_longer_grace_and_reaches_the_node(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, node_shutdown_s=40.0)
    seen = _stop(settings, tmp_path)
    assert ("node", 43.0) in seen
    assert LocalMesh(settings)._env()["LLM_MESH_NODE_SHUTDOWN_S"] == "40.0"
    assert ("node", 5.0) in _stop(settings, tmp_path, grace_s=5.0)  # given: as given


def test_rotate_log_keeps_backups_and_the_writer_goes_on_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "registry.log"
    for i, text in ((1, b"old1"), (2, b"old2"), (3, b"old3")):
        path.with_name(f"registry.log.{i}").write_bytes(text)
    with path.open("ab") as writer:  # as a child holds its stdout
        writer.write(b"x" * 100)
        writer.flush()
        assert rotate_log(path, backups=3)
        writer.write(b"after\n")
        writer.flush()
    assert path.read_bytes() == b"after\n"  # at the new end, no hole of 100 bytes before it
    assert [path.with_name(f"registry.log.{i}").read_bytes() for i in (1, 2, 3)] == [
        b"x" * 100, b"old1", b"old2",
    ]  # fmt: skip
    assert not path.with_name("registry.log.4").exists()
    assert not rotate_log(tmp_path / "gone.log", backups=3)


def test_rotate_logs_rotates_only_a_log_past_the_bound(tmp_path: Path) -> None:
    mesh = LocalMesh(Settings(home=tmp_path))
    logs = {}
    for name, size in (("registry", 150), ("node", 50)):
        path = tmp_path / f"{name}.log"
        logs[name] = path.open("ab")
        logs[name].write(b"y" * size)
        logs[name].flush()
        proc: subprocess.Popen[bytes] = _Proc(name, [])  # type: ignore[assignment]
        mesh._children.append(_Child(name, proc, path, logs[name]))
    try:
        assert mesh.rotate_logs(max_bytes=100) == 1
        assert (tmp_path / "registry.log").stat().st_size == 0
        assert (tmp_path / "registry.log.1").stat().st_size == 150
        assert (tmp_path / "node.log").stat().st_size == 50
        assert mesh.rotate_logs(max_bytes=100) == 0  # nothing past it any more
    finally:
        for f in logs.values():
            f.close()


def test_a_stop_signal_while_a_child_starts_still_stops_that_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03 (``test_demo_stopped_by_sigterm_stops_its_registry_and_node`` on a
    loaded box): SIGTERM to ``demo`` while ``Popen`` waited for its node's exec raised
    ``KeyboardInterrupt`` there (``demo``'s handler), the child not yet known to the stop:
    the node served on after ``demo`` exited. The signal here comes just so."""
    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def popen(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kw)
        started.append(proc)
        signal.raise_signal(signal.SIGTERM)  # forked, not yet returned
        return proc

    def like_demo(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(local_mesh.subprocess, "Popen", popen)
    old = signal.signal(signal.SIGTERM, like_demo)
    mesh = LocalMesh(Settings(home=tmp_path))
    try:
        with pytest.raises(KeyboardInterrupt):
            mesh._spawn("node", ["node", "start"])
        mesh.stop(grace_s=10)
        assert started[0].poll() is not None  # before: still running, never signalled
    finally:
        signal.signal(signal.SIGTERM, old)
        for proc in started:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_another_registry_taking_the_port_is_not_taken_for_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03: ``make demo`` a few seconds after ``llm-mesh up``: up's registry bound
    8800 just after demo's port check, answered demo's ``/healthz``, and demo went on to start
    its node, which failed on 8801 with advice for ``node start`` (``--port``, node.toml). Only
    the mesh's own registry (its key, from this home) counts as ready: here its registry stops
    at the taken port and says so."""
    from tests.e2e.conftest import free_port

    class Impostor(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/healthz": {"status": "ok"}}.get(
                self.path, {"data": [{"public_key": "another registry's key", "current": True}]}
            )
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args: Any) -> None:
            pass

    port = free_port()
    monkeypatch.setattr(local_mesh, "_require_free_port", lambda _h, _p: None)  # the race
    server = ThreadingHTTPServer(("127.0.0.1", port), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mesh = LocalMesh(
        Settings(home=tmp_path / "home"), engine="sim", model="mistral-7b",
        registry_port=port, node_port=free_port(), start_timeout_s=20,
    )  # fmt: skip
    try:
        with pytest.raises(
            LocalMeshError, match=r"already in use .*\(the registry exited with code 1 while"
        ) as e:
            mesh.start()
        # the advice is the command's (`registry serve`'s own --port is not `up`'s or `demo`'s)
        assert str(e.value).endswith(
            "`llm-mesh up` takes other ports with --registry-port and --node-port"
        )
    finally:
        mesh.stop()
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "home" / "logs" / "node.log").exists()  # no node was started


def _started_commands(
    mesh: LocalMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[str]]:
    """``mesh.start()`` with the processes, the port check and the waits left out: the
    command line of each child it would start, by name."""
    spawned: dict[str, list[str]] = {}

    def spawn(name: str, args: list[str]) -> _Child:
        spawned[name] = args
        proc: subprocess.Popen[bytes] = _Proc(name, [])  # type: ignore[assignment]
        return _Child(name, proc, tmp_path / f"{name}.log", io.BytesIO())

    monkeypatch.setattr(local_mesh, "_require_free_port", lambda _h, _p: None)
    monkeypatch.setattr(mesh, "_spawn", spawn)
    monkeypatch.setattr(mesh, "_wait", lambda *_a: None)
    mesh.start()
    return spawned


def test_a_local_mesh_on_a_lan_address_pins_its_registry_key_in_its_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03 (review): ``LocalMesh(host=<a LAN address>)`` started a node that
    refused to start (no pinned key, plain http to a registry that is not loopback:
    ``core/first_use.py``), though the mesh made its registry's key itself. Its node now
    gets that key pinned; the node's own check passes with it and refuses without it."""
    from LLM_Mesh.core.identity import encode_public_key, public_key_of
    from LLM_Mesh.registry.gateway_key import load_existing_registry_key, registry_key_path

    settings = Settings(home=tmp_path / "home")
    mesh = LocalMesh(settings, engine="sim", host="192.168.1.20", registry_port=18800)
    node = _started_commands(mesh, tmp_path, monkeypatch)["node"]
    assert node.count("--registry-public-key") == 1
    pinned = node[node.index("--registry-public-key") + 1]
    key = load_existing_registry_key(registry_key_path(settings))
    assert key is not None
    assert pinned == encode_public_key(public_key_of(key))  # this home's registry's key
    assert node[node.index("--registry") + 1] == "http://192.168.1.20:18800"

    # the node's own start with that command line (its engine and serving left out)
    from typer.testing import CliRunner

    from LLM_Mesh.cli.main import app
    from LLM_Mesh.node_manager import NodeManager

    started: list[Any] = []
    monkeypatch.setattr(NodeManager, "run", lambda self: started.append(self.config))
    home = ["--home", str(settings.home)]
    r = CliRunner().invoke(app, [*node, *home])
    assert r.exit_code == 0, r.output
    assert [c.registry_public_key for c in started] == [pinned]
    at = node.index("--registry-public-key")
    unpinned = node[:at] + node[at + 2 :]  # the command before the fix: refused
    r = CliRunner().invoke(app, [*unpinned, *home])
    assert r.exit_code == 1 and "registry_public_key" in " ".join(r.output.split())


def test_a_local_mesh_on_loopback_starts_its_node_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = LocalMesh(Settings(home=tmp_path / "home"), engine="sim", model="m", node_port=18801)
    assert _started_commands(mesh, tmp_path, monkeypatch)["node"] == [
        "node", "start", "--registry", mesh.registry_url, "--model", "m", "--engine", "sim",
        "--host", "127.0.0.1", "--port", "18801", "--no-config",
    ]  # fmt: skip


def test_a_home_whose_node_key_a_running_node_holds_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new user): with `llm-mesh up` running, `llm-mesh demo
    --registry-port 8810 --node-port 8811` (as the taken port's message advised) in the same
    home started a registry on up's store, whose listing showed up's node (one key, one node
    id) as its own node ready, while its own node stopped on the held key; the request went
    to up's node, which that registry may not call: `error: node ... is unreachable:
    AddressRefused`. It now stops before starting anything, naming --home."""
    from LLM_Mesh.secret_files import try_lock

    home = tmp_path / "home"
    fd = try_lock(home / "node.key.lock")  # as `llm-mesh up`'s node holds it
    assert fd is not None
    spawned: list[str] = []
    monkeypatch.setattr(local_mesh, "_require_free_port", lambda _h, _p: None)
    mesh = LocalMesh(Settings(home=home), engine="sim", model="mistral-7b")
    monkeypatch.setattr(mesh, "_spawn", lambda name, _args: spawned.append(name))
    try:
        with pytest.raises(LocalMeshError, match=r"node\.key") as e:
            mesh.start()
    finally:
        os.close(fd)
    assert spawned == []
    said = str(e.value)
    assert "--home DIR" in said and "another `llm-mesh up`" in said, said
    # its own key (node start --key-file, after --): the home's key is not its concern
    other = LocalMesh(Settings(home=home), engine="sim", model="mistral-7b",
                      node_args=["--key-file", str(tmp_path / "other.key")])  # fmt: skip
    fd = try_lock(home / "node.key.lock")
    assert fd is not None
    try:
        assert _started_commands(other, tmp_path, monkeypatch)["node"]
    finally:
        os.close(fd)
    # the same as one argument, --key-file=PATH (found 2026-12-05, review29: refused)
    joined = LocalMesh(Settings(home=home), engine="sim", model="mistral-7b",
                       node_args=[f"--key-file={tmp_path / 'other.key'}"])  # fmt: skip
    fd = try_lock(home / "node.key.lock")
    assert fd is not None
    try:
        assert _started_commands(joined, tmp_path, monkeypatch)["node"]
    finally:
        os.close(fd)


def test_a_taken_port_names_the_home_a_second_mesh_needs_too(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(LocalMeshError) as e:
            local_mesh._require_free_port("127.0.0.1", s.getsockname()[1])
    assert "--registry-port / --node-port" in str(e.value) and "--home DIR" in str(e.value)


class _Clock:
    """``time`` for ``local_mesh``: ``sleep`` moves ``monotonic`` on, at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _slow_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry_ready_at: float, timeout_s: float
) -> tuple[LocalMesh, _Clock]:
    """A mesh whose registry serves ``registry_ready_at`` s (of a fake clock) after it is
    started and whose node serves at once; no process is started."""
    clock = _Clock()
    monkeypatch.setattr(local_mesh, "time", clock)
    mesh = LocalMesh(
        Settings(home=tmp_path / "home"), engine="sim", model="mistral-7b",
        start_timeout_s=timeout_s,
    )  # fmt: skip

    def spawn(name: str, _args: list[str]) -> _Child:
        proc: subprocess.Popen[bytes] = _Proc(name, [])  # type: ignore[assignment]
        return _Child(name, proc, tmp_path / f"{name}.log", io.BytesIO())

    monkeypatch.setattr(local_mesh, "_require_free_port", lambda _h, _p: None)
    monkeypatch.setattr(mesh, "prepare_credentials", lambda: False)
    monkeypatch.setattr(mesh, "_spawn", spawn)
    monkeypatch.setattr(mesh, "_registry_serving", lambda _c: clock.now >= registry_ready_at)
    monkeypatch.setattr(mesh, "_node_serving", lambda _c: True)
    return mesh, clock


def test_a_registry_slower_than_a_minute_to_serve_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-06 (flaky36): the registry got a fixed 60 s, whatever
    ``start_timeout_s`` said (the node got that): on the shared 2-core box at load 13–18 a
    registry took 98.5 s to answer ``/healthz``, and ``up`` gave up on it."""
    mesh, clock = _slow_start(tmp_path, monkeypatch, registry_ready_at=98.5, timeout_s=300)
    mesh.start()
    assert 98.5 <= clock.now < 100


def test_a_registry_that_never_serves_fails_the_start_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh, clock = _slow_start(tmp_path, monkeypatch, registry_ready_at=1e9, timeout_s=150)
    with pytest.raises(LocalMeshError, match="the registry was not ready after 150 s"):
        mesh.start()
    assert 150 <= clock.now < 151


def _exited_while_starting(tmp_path: Path, args: list[str], log_to: str | None = None) -> str:
    """The start's error when its registry child (``python -m LLM_Mesh.cli ARGS``) exits;
    ``log_to``: where its log file leads (``/dev/full``: a disk with no space left, every
    write refused), an empty file in its place once the child has it open."""
    settings = Settings(home=tmp_path / "home")
    logs = settings.home / "logs"
    logs.mkdir(parents=True)
    if log_to is not None:
        (logs / "registry.log").symlink_to(log_to)
    mesh = LocalMesh(settings)
    child = mesh._spawn("registry", args)
    if log_to is not None:  # what it wrote is not there (a full disk's log: empty)
        (logs / "registry.log").unlink()
        (logs / "registry.log").touch()
    with pytest.raises(LocalMeshError) as caught:
        mesh._wait(child, lambda _c: False, 120)
    assert child.proc.returncode is not None and not mesh.started
    return str(caught.value)


def test_a_child_failing_its_start_on_a_full_disk_is_said_in_its_own_line(tmp_path: Path) -> None:
    """Found 2026-12-07 (fulldisk43): ``up`` in a home with a little space left (a 700 KiB
    tmpfs) made its keys and store; its registry then failed its own start in one line, to
    its log, which the full disk refused: ``up`` said ``the registry exited with code 1
    while starting. Last lines of HOME/logs/registry.log:`` and nothing. Now the child's
    line comes through its error pipe (``error_pipe.py``), with the log's path."""
    said = _exited_while_starting(
        tmp_path, ["registry", "serve", "--tls-cert", "cert.pem"], log_to="/dev/full"
    )
    log = tmp_path / "home" / "logs" / "registry.log"
    assert said == (
        "--tls-cert and --tls-key go together (the registry exited with code 1 while "
        f"starting; its log: {log})"
    )


def test_a_child_that_says_no_line_of_its_own_is_said_by_its_logs_last_lines(
    tmp_path: Path,
) -> None:
    said = _exited_while_starting(tmp_path, ["no-such-command"])
    assert said.startswith("the registry exited with code 2 while starting.\nLast lines of ")
    assert "No such command" in said  # click's usage error, not through ``fail``
