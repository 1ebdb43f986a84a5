"""A whole mesh on one machine: a registry+gateway process and one node process.

``llm-mesh up`` and ``llm-mesh demo`` use this. The parts run as separate
processes, exactly as on separate machines (``llm-mesh registry serve`` and
``llm-mesh node start``); this module only starts them, waits until the node
is registered and healthy, and stops them cleanly (node first, so it
deregisters; SIGTERM, then SIGKILL after a grace period). Each child's output
goes to ``$LLM_MESH_HOME/logs/{registry,node}.log``, one line per request on each.

Those files stay bounded: ``llm-mesh up`` calls :meth:`LocalMesh.rotate_logs` while it
runs, and a log past :data:`LOG_MAX_BYTES` is copied to ``.1`` (older copies move up to
``.{LOG_BACKUPS}``, the oldest dropped) and emptied in place (:func:`rotate_log`): the
child keeps its file open in append mode and writes on at its new end. Lines a child
writes between the copy and the truncation are lost (a few at most, as with
logrotate's ``copytruncate``). Before, they grew for as long as the mesh ran: about
300 bytes a request in each file, some 1 GB a day for each at 40 requests/s.

The registry accepts a private (loopback) address for its own node's origin
only (``--allow-private-node http://127.0.0.1:PORT``), not for any node: another
local program could otherwise register ``http://127.0.0.1:<some local service>``
or ``169.254.169.254`` and have the gateway call it. ``allow_local_nodes=True``
(``llm-mesh up --allow-local-nodes``) adds ``--allow-loopback-nodes``: other nodes on
this machine may join, on loopback addresses only (never the LAN, link-local/metadata
or another private range); both processes listen on ``host``, 127.0.0.1 (the CLI has no
other), so only programs on this machine reach the registry at all.

On another ``host`` (``LocalMesh(host="192.168.1.20")``: a LAN address, benchmarks) its node
gets its registry's key pinned (``--registry-public-key``, :meth:`LocalMesh.node_command`):
a node refuses to learn a key over plain http from a registry that is not loopback
(``core/first_use.py``), and this mesh made that key itself, so no flag and no trust on
first use are needed. On loopback the node starts as before (it learns the key, safely).
``allow_private_nodes=True`` (tests that add more local nodes) starts it with
``--allow-private-nodes``. The registry gets ``--local-mesh`` too (as
``$LLM_MESH_LOCAL_MESH``, which a registry of an older checkout, as a benchmark's
``--baseline-tree`` starts, ignores), so its refusals name ``up``'s flag, not
``registry serve``'s; ``demo``'s (``command="demo"``), which has no such flag and stops
after its one request, says so and names ``up --allow-local-nodes``.

Zero-config: before starting anything it makes what its own node needs in the
registry's store, as an admin would: the store's admin key (``$LLM_MESH_HOME/admin.key``,
made once) and the operator ``local`` with a fresh token (rotated every start), which
the node gets in ``LLM_MESH_OPERATOR_TOKEN``; and the node's key
(``$LLM_MESH_HOME/node.key``, made once), whose id tells its node apart in the public
``/mesh/nodes`` listing (which shows no node URLs); and the registry's key
(``$LLM_MESH_HOME/registry.key``, made once), by which its registry is told apart from
another process that took the port after the check (an ``llm-mesh up`` still starting): only
a registry publishing that key at ``/v1/ledger/keys`` is its own, ready.

A one-person mesh on one machine: its registry runs without the anonymous rate limit
(``--anonymous-rpm 0``) unless ``anonymous_rpm`` asks for one (``llm-mesh up
--anonymous-rpm N``). API keys work as on any registry (``llm-mesh registry keys``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh import error_pipe
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT, DEFAULT_REGISTRY_PORT, Settings
from LLM_Mesh.core.first_use import loopback_host
from LLM_Mesh.errors import MeshError
from LLM_Mesh.secret_files import make_private_dir

#: SIGTERM → SIGKILL for a child that does not exit, at least (a node's own bound is 12 s by
#: default; the registry's 80 s, waited for: LocalMesh._grace)
STOP_GRACE_S = 15.0

#: the registry's hidden ``--local-mesh`` as ``up`` sets it (``registry serve``'s envvar)
LOCAL_MESH_ENV = "LLM_MESH_LOCAL_MESH"
#: a child's log file past this many bytes is rotated (:func:`rotate_log`)
LOG_MAX_BYTES = 10 * 1024 * 1024
#: rotated copies kept per log (``registry.log.1`` newest … ``.3``)
LOG_BACKUPS = 3


class LocalMeshError(MeshError):
    """A local process failed to start; the message carries its last log lines."""


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    said: int | None = None  # the read end of its error pipe (``error_pipe.py``)


@dataclass
class LocalMesh:
    settings: Settings
    model: str = DEFAULT_MODEL
    engine: str = "llama-cpp"
    host: str = "127.0.0.1"
    registry_port: int = DEFAULT_REGISTRY_PORT
    node_port: int = DEFAULT_NODE_PORT
    node_args: list[str] = field(default_factory=list)
    #: how long each child (registry, then node) may take to serve before the start gives up
    #: (a child that exits fails it at once). Found 2026-12-06 (flaky36): the registry had a
    #: fixed 60 s; on a 2-core box at load 13–18 one took 98.5 s to answer ``/healthz``
    start_timeout_s: float = 300.0
    allow_private_nodes: bool = False  # default: its own node's origin only
    allow_local_nodes: bool = False  # True: any node on loopback (`up --allow-local-nodes`)
    anonymous_rpm: int | None = None  # default: no limit for clients without a key
    command: str = "up"  # the CLI command that runs it (`demo`: its registry's refusals say so)
    _children: list[_Child] = field(default_factory=list)
    _operator_token: str | None = field(default=None, repr=False)
    _node_id: str | None = None
    _registry_key: str | None = None  # its registry's public key (base64), from this home
    _registry_pin: str | None = None  # the same, as a node pins it (base64url: encode_public_key)

    @property
    def registry_url(self) -> str:
        return f"http://{self.host}:{self.registry_port}"

    @property
    def dashboard_url(self) -> str:
        """The web dashboard the gateway serves (``registry/dashboard/``)."""
        return f"{self.registry_url}/dashboard/"

    @property
    def node_url(self) -> str:
        return f"http://{self.host}:{self.node_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LLM_MESH_HOME"] = str(self.settings.home)
        env["LLM_MESH_REGISTRY_URL"] = self.registry_url
        env["LLM_MESH_HEARTBEAT_S"] = str(self.settings.heartbeat_interval_s)
        env["LLM_MESH_HEALTH_CHECK_S"] = str(self.settings.health_check_interval_s)
        env["LLM_MESH_NODE_SHUTDOWN_S"] = str(self.settings.node_shutdown_s)
        env["LLM_MESH_REGISTRY_SHUTDOWN_S"] = str(self.settings.registry_shutdown_s)
        if self.settings.database_url:
            env["LLM_MESH_DATABASE_URL"] = self.settings.database_url
        if self._operator_token:
            env["LLM_MESH_OPERATOR_TOKEN"] = self._operator_token
        # the registry's refusals say what to run (`--local-mesh`); `up` as 1, which a registry
        # of an older tree with a boolean flag parses too
        env[LOCAL_MESH_ENV] = "demo" if self.command == "demo" else "1"
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def registry_command(self) -> list[str]:
        """``llm-mesh`` arguments that start this mesh's registry (no SSRF: see the module doc)."""
        private = (
            ["--allow-private-nodes"]
            if self.allow_private_nodes
            else ["--allow-private-node", self.node_url]  # its own node only, not any
        )
        if self.allow_local_nodes:
            private.append("--allow-loopback-nodes")  # 127.0.0.0/8 and ::1, nothing else
        return [
            "registry",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.registry_port),
            *private,
            "--anonymous-rpm",
            str(self.anonymous_rpm or 0),
        ]

    def node_command(self) -> list[str]:
        """``llm-mesh`` arguments that start this mesh's node. On a ``host`` other than
        loopback its registry's key (:meth:`prepare_credentials`) is pinned
        (``--registry-public-key``): the node would otherwise refuse to learn it over plain
        http (``core/first_use.py``), and this mesh knows it; on loopback, as before."""
        pin: list[str] = []
        if not loopback_host(self.host):
            if self._registry_pin is None:
                raise LocalMeshError("the registry's key is not known: prepare_credentials()")
            pin = ["--registry-public-key", self._registry_pin]
        return [
            "node", "start",
            "--registry", self.registry_url,
            "--model", self.model,
            "--engine", self.engine,
            "--host", self.host,
            "--port", str(self.node_port),
            "--no-config",  # the local mesh is what the flags say, whatever node.toml holds
            *pin,
            *self.node_args,  # after it: a key given there wins
        ]  # fmt: skip

    def prepare_credentials(self) -> bool:
        """The store's admin key and the ``local`` operator's token (see the module docstring);
        ``True`` when the admin key was made now (it is in ``$LLM_MESH_HOME/admin.key``)."""

        async def go() -> bool:
            from LLM_Mesh.core.identity import encode_public_key
            from LLM_Mesh.node.keys import key_path, load_or_create_key
            from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
            from LLM_Mesh.registry.gateway_key import load_or_create_registry_key, registry_key_path
            from LLM_Mesh.registry.store import SqlStore

            key = load_or_create_registry_key(registry_key_path(self.settings))  # as it will
            raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self._registry_key = base64.b64encode(raw).decode()
            self._registry_pin = encode_public_key(raw)

            store = SqlStore(self.settings.effective_database_url)
            await store.open()
            try:
                admin = await ensure_admin_key(self.settings, store)
                self._operator_token = await add_operator(store, "local", replace=True)
                self._node_id = load_or_create_key(key_path(self.settings)).node_id
                return admin.created
            finally:
                await store.close()

        # a thread of its own: the caller may be inside a running event loop
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result()

    def _spawn(self, name: str, args: list[str]) -> _Child:
        logs = self.settings.home / "logs"
        make_private_dir(logs)
        path = logs / f"{name}.log"
        log = path.open("ab")
        cmd = [sys.executable, "-m", "LLM_Mesh.cli", *args]
        said, tell = error_pipe.open_pipe()  # its one-line error, which a full disk keeps from
        env = {**self._env(), error_pipe.ERROR_FD_ENV: str(tell)}  # its log (fulldisk43)
        try:
            with _stop_signals_deferred():  # a child started is a child :meth:`stop` knows
                proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                    pass_fds=(tell,),
                )  # fmt: skip
                child = _Child(name, proc, path, log, said)
                self._children.append(child)
        except BaseException:
            if not any(c.said == said for c in self._children):  # else :meth:`stop` closes it
                os.close(said)
            raise
        finally:
            os.close(tell)  # the child's own copy is the only one: gone when it exits
        return child

    def start(self, progress: Callable[[str], None] = lambda _msg: None) -> None:
        """Start registry then node; return once the node serves ``model``."""
        make_private_dir(self.settings.home)
        for port in (self.registry_port, self.node_port):
            _require_free_port(self.host, port)
        if not _names_key_file(self.node_args):  # else its own key, not the home's
            _require_free_key(self.settings.home / "node.key")
        with self._writes_said():
            made = self.prepare_credentials()
        if made:
            progress(f"made the admin key: {self.settings.home / 'admin.key'} (mode 0600)")
        progress(f"starting registry + gateway at {self.registry_url}")
        with self._writes_said():
            reg = self._spawn("registry", self.registry_command())
        self._wait(reg, self._registry_serving, self.start_timeout_s)
        progress(
            f"starting node at {self.node_url} ({self.engine}, {self.model}); loading the model"
        )
        with self._writes_said():
            node = self._spawn("node", self.node_command())
        self._wait(node, self._node_serving, self.start_timeout_s)
        progress("node registered and healthy")

    @contextmanager
    def _writes_said(self) -> Iterator[None]:
        """A file of the home it could not write (its keys, the store, ``logs/``: a full or
        read-only disk) as :class:`LocalMeshError`, one line (``start_writes.py``); what was
        started is stopped. Any other error as it was."""
        from LLM_Mesh.registry.pg_connect import sqlite_file
        from LLM_Mesh.start_writes import refusal_of

        try:
            yield
        except Exception as exc:
            sqlite = sqlite_file(self.settings.effective_database_url)
            database = None if sqlite is None else str(sqlite)
            line = refusal_of(exc, f"llm-mesh {self.command}", database)
            if line is None:
                raise
            self.stop()
            raise LocalMeshError(line) from exc

    def _registry_serving(self, client: httpx.Client) -> bool:
        """Its own registry answers: one that signs with this home's key, not another that
        took the port after the check (an ``llm-mesh up`` still starting, say)."""
        if _get(client, self.registry_url + "/healthz") is None:
            return False
        keys = _get(client, self.registry_url + "/v1/ledger/keys")
        data = keys.get("data") if isinstance(keys, dict) else None
        return any(
            isinstance(k, dict) and k.get("public_key") == self._registry_key for k in data or []
        )

    def _node_serving(self, client: httpx.Client) -> bool:
        data = _get(client, self.registry_url + "/mesh/nodes")
        if not data:
            return False
        for n in data.get("nodes", []):
            if n.get("node_id") == self._node_id and n.get("healthy"):
                return any(
                    m.get("id") == self.model or self.model.endswith(".gguf")
                    for m in n.get("models", [])
                )
        return False

    def _wait(self, child: _Child, ready: Callable[[httpx.Client], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if child.proc.poll() is not None:
                    line = None if child.said is None else error_pipe.read_said(child.said)
                    self.stop()
                    if line is not None:  # its own one-line error: said, the log named
                        raise LocalMeshError(self._exited_said(child, line))
                    tail = _tail(child.log_path)
                    raise LocalMeshError(
                        f"the {child.name} exited with code {child.proc.returncode} while starting.\n"
                        f"Last lines of {child.log_path}:\n{tail}"
                        + (  # its advice is `registry serve`'s or `node start`'s flag
                            f"\n`llm-mesh {self.command}` takes other ports with --registry-port "
                            "and --node-port"
                            if "already in use" in tail
                            else ""
                        )
                    )
                if ready(client):
                    return
                time.sleep(0.2)
        self.stop()
        raise LocalMeshError(
            f"the {child.name} was not ready after {timeout:.0f} s.\n"
            f"Last lines of {child.log_path}:\n{_tail(child.log_path)}"
        )

    def _exited_said(self, child: _Child, line: str) -> str:
        """One line for a child that exited while starting and said why (its ``error:``
        line, through its pipe: a full disk keeps it from its log, fulldisk43)."""
        ports = (  # its advice is `registry serve`'s or `node start`'s flag
            f"; `llm-mesh {self.command}` takes other ports with --registry-port and --node-port"
            if "already in use" in line
            else ""
        )
        return (
            f"{line} (the {child.name} exited with code {child.proc.returncode} while "
            f"starting; its log: {child.log_path}){ports}"
        )

    def rotate_logs(self, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> int:
        """Rotate each child's log past ``max_bytes`` (:func:`rotate_log`); how many were.
        Cheap enough to call every loop of a wait: one ``fstat`` per child."""
        rotated = 0
        for child in self._children:
            if os.fstat(child.log.fileno()).st_size > max_bytes:
                rotated += rotate_log(child.log_path, backups)
        return rotated

    @property
    def started(self) -> bool:
        """Whether a child was started and not stopped since (a start that failed stopped
        what it had started)."""
        return bool(self._children)

    def alive(self) -> bool:
        return bool(self._children) and all(c.proc.poll() is None for c in self._children)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop the node first (it deregisters), then the registry: SIGTERM, then SIGKILL
        after ``grace_s`` (default: 15 s, or the child's own shutdown bound + 3 s if longer:
        ``LLM_MESH_NODE_SHUTDOWN_S``, ``LLM_MESH_REGISTRY_SHUTDOWN_S``; core/shutdown.py),
        so a child stuck in its stop exits by its own bound, its warning logged."""
        for child in reversed(self._children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(self._grace(child.name) if grace_s is None else grace_s)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(5)
            child.log.close()
            if child.said is not None:
                os.close(child.said)
        self._children.clear()

    def stop_grace_s(self, name: str) -> float:
        """How long :meth:`stop` gives the child ``name`` (``node``, ``registry``)."""
        return self._grace(name)

    def _grace(self, name: str) -> float:
        """SIGTERM → SIGKILL for the child ``name``: 15 s, or its own bound + 3 s."""
        bound = (
            self.settings.registry_shutdown_s
            if name == "registry"
            else self.settings.node_shutdown_s
        )
        return max(STOP_GRACE_S, bound + 3.0)

    def __enter__(self) -> LocalMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_STOPS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held until the block is done, then handled as they came.

    Found 2026-12-03 (``test_demo_stopped_by_sigterm_stops_its_registry_and_node``, loaded):
    ``up``'s and ``demo``'s handlers raise ``KeyboardInterrupt``; one raised inside
    ``Popen`` after the fork (it waits for the exec) lost the child, in a session of its
    own, before it was in ``_children``: the stop never signalled it and it served on.
    Only in the main thread (where Python runs handlers); elsewhere a plain block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    kept = {s: signal.signal(s, lambda signum, _f: came.append(signum)) for s in _STOPS}
    try:
        yield
    finally:
        for stop, handler in kept.items():
            signal.signal(stop, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(came):
            signal.raise_signal(signum)  # now: the handler stops what was started, child too


def rotate_log(path: Path, backups: int) -> bool:
    """Copy ``path`` to ``path.1`` (``.1`` … to ``.2`` …, at most ``backups`` kept) and
    empty it in place, for writers that hold it open in append mode; ``False`` when it
    is gone."""
    try:
        for i in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{i + 1}"))
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    return True


def _get(client: httpx.Client, url: str) -> Any:
    try:
        r = client.get(url)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _require_free_port(host: str, port: int) -> None:
    from LLM_Mesh.server_process import port_taken

    if port_taken(host, port):
        raise LocalMeshError(
            f"port {port} on {host} is already in use: is another `llm-mesh up` running? "
            "Stop it, or run this one beside it: other ports (--registry-port / --node-port) "
            "and a home of its own (--home DIR)."
        )


def _names_key_file(args: Sequence[str]) -> bool:
    """Whether the node's own arguments name its key: ``--key-file PATH`` or
    ``--key-file=PATH`` (found 2026-12-05, review29: only the first was seen)."""
    return any(a == "--key-file" or a.startswith("--key-file=") for a in args)


def _require_free_key(key: Path) -> None:
    """No node runs with ``key`` (its ``.lock``, held while one does: ``node/keys.key_in_use``):
    else this mesh's node would stop on it, and its registry, on the same store, would take
    the other's node (one key, one node id) for its own."""
    from LLM_Mesh.secret_files import try_lock

    lock = key.with_name(key.name + ".lock")
    try:
        fd = try_lock(lock)
    except (ImportError, OSError):  # no flock, or a folder it cannot write: the node says
        return
    if fd is not None:
        os.close(fd)
        return
    raise LocalMeshError(
        f"a node is running with {key} ({lock} is held): is another `llm-mesh up` running "
        "in this home? Stop it, or give this one a home of its own: --home DIR "
        "(or LLM_MESH_HOME=DIR)."
    )
