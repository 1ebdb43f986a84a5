"""``llm-mesh registry serve --workers N``: N registry processes on one port, supervised.

One gateway process spends about twice a node's CPU on each request, and its one event
loop is its ceiling (docs/benchmarks.md, the 16-core section): a machine with the cores
serves more from one address by running several processes. Each worker is a whole
registry replica (see docs/ARCHITECTURE.md, "Replicas"): its own replica id, routing
statistics and settlement holder, sharing the network's state through the PostgreSQL
store as replicas on several machines do, so N > 1 needs a PostgreSQL ``--database-url``.
Otherwise each is the single-process ``registry serve``, but binds nothing: the supervisor
binds the address once, before any worker starts (``server_process.shared_socket``), and
hands that one socket to every worker it starts, restarted ones too (an inherited file
descriptor: ``Popen(pass_fds=...)``, its number in ``LLM_MESH_LISTEN_FD``). Worker 0's
server listens on it once its app has started; from then on it listens as long as the
supervisor runs. One accept queue, every worker's event loop waiting on it: a free worker
takes the next connection, a busy one takes it later, a stopped, hung or dead one takes
none (they wait for the others), and a worker's exit or restart drops no connection still
queued, only those it had accepted. (``SO_REUSEPORT``, one socket and queue a worker,
spread connections by a hash of their addresses: some workers idle while others queued
several, and a hung worker kept about 1 in N new connections, answering none.)

:class:`WorkerSupervisor` (this process, which serves nothing itself):

- starts worker 0 alone and waits until it listens (a fresh home's keys and the schema's
  migrations are made once, not raced by N processes), then the others;
- restarts a worker that exits unasked, after :class:`~LLM_Mesh.core.worker_restart.RestartPolicy`'s
  wait (1 s, doubling to 30 s while it keeps dying within a minute), logging its exit code;
- kills (``SIGKILL``) a worker that hangs (the connections it had accepted hang with it),
  then restarts it as one that exited: each worker
  sets its heartbeat file's modification time every second from its event loop
  (:mod:`LLM_Mesh.worker_beat`; the files are in this run's private 0700 directory); one
  silent longer than ``hang.timeout_s`` (``--worker-timeout``, 30 s; 0: never), or, before
  its first beat, than ``hang.start_s`` (``start_timeout_s``), is killed with one WARNING
  line (:class:`~LLM_Mesh.core.worker_restart.HangPolicy` decides); a file (or the
  directory) someone removed is made again, not taken for silence;
- on SIGTERM or SIGINT closes its copy of the socket and sends each worker one SIGTERM
  (each stops as a lone registry does: it closes its copy, so no new connections once all
  have, requests in flight drain, bounded by ``registry_shutdown_s``) and
  exits 0 once they are gone (70, as a lone registry past its bound, when a worker exited
  70 or was killed); a second signal is passed on too (the workers then cut what
  is in flight); a worker still alive ``stop_timeout_s`` after the first is killed (None:
  never, for ``LLM_MESH_REGISTRY_SHUTDOWN_S=0``, no bound);
- the workers run in their own process groups (a terminal's Ctrl-C reaches this process
  alone, which passes it on once) and, on Linux, are sent SIGTERM if this process dies
  (``PR_SET_PDEATHSIG``): a supervisor killed with SIGKILL leaves no workers serving.

If worker 0 cannot start (it exits, or does not listen within ``start_timeout_s``) the
supervisor stops and returns worker 0's exit code (1 on the timeout): the reason is in its
log lines above.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.shutdown import STOP_OVERDUE_STATUS
from LLM_Mesh.core.worker_restart import DEFAULT_WORKER_TIMEOUT_S, HangPolicy, RestartPolicy
from LLM_Mesh.server_process import LISTEN_FD_ENV, shared_socket
from LLM_Mesh.worker_beat import HEARTBEAT_ENV

__all__ = ["WorkerSupervisor", "connect_host"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1


def connect_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine (a wildcard: loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _child_setup(parent: int, libc: ctypes.CDLL | None) -> Callable[[], None]:
    def setup() -> None:  # in the child, between fork and exec: no Python objects made
        os.setpgid(0, 0)
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the supervisor died before the prctl
                os._exit(1)

    return setup


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):  # no PR_SET_PDEATHSIG elsewhere
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a Linux without a C library handle
        return None


def _remade(beat: str) -> int | None:
    """The heartbeat file ``beat`` made again, and its directory (mode 0700) if that is gone
    too: its modification time now; None when it cannot be, or the directory there now is
    not this user's private one (made by someone else meanwhile: nothing written into it)."""
    folder = os.path.dirname(beat)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        os.close(os.open(beat, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        return os.stat(beat).st_mtime_ns
    except OSError:
        return None


class WorkerSupervisor:
    """N workers of ``command(i)``, listening on ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        n: int,
        command: Callable[[int], Sequence[str]],
        host: str,
        port: int,
        *,
        start_timeout_s: float = 120.0,
        stop_timeout_s: float | None = 40.0,
        worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        policy: Callable[[], RestartPolicy] = RestartPolicy,
        clock: Callable[[], float] = time.monotonic,
        sock: socket.socket | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"workers must be at least 1, got {n}")
        self.n = n
        self.command = command
        self.host, self.port = host, port
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.env = dict(env) if env is not None else None
        self.clock = clock
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self.started_at = [0.0] * n
        self.restart_at: list[float | None] = [None] * n
        self.policies = [policy() for _ in range(n)]
        self.hang = HangPolicy(timeout_s=worker_timeout_s, start_s=start_timeout_s)
        self.beat_dir: str | None = None  # this run's heartbeat files, one a worker
        self.beat_dirs: set[str] = set()  # every one made (a removed one is made anew)
        self.beat_file: list[str | None] = [None] * n  # each worker's (None: unwatched)
        self.beat_mtime = [0] * n  # each file's modification time last seen (ns)
        self.beat_at: list[float | None] = [None] * n  # when it last changed (None: not yet)
        self.hung: set[int] = set()  # workers killed as hung, not yet reaped
        self.signals = 0  # stop signals received
        self._passed_on = 0  # of them, passed on to the workers
        self._killed = False  # a worker killed at the stop's deadline
        self._libc = _libc()
        # the workers' one socket (None: run binds it); closed when the stop begins
        self.sock = sock

    # --- signals -----------------------------------------------------------------------

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.signals += 1  # said and passed on by the loop (no logging in a handler)

    def _pass_signals_on(self) -> None:
        while self._passed_on < self.signals:
            self._passed_on += 1
            if self._passed_on == 1:
                log.info("stopping %s", counted(self.live(), "worker"))
                if self.sock is not None:  # its last copy is gone once each worker's server
                    self.sock.close()  # closed its own: new connections are refused, not
                    # queued for workers that stop (as a lone registry's)
            else:
                log.warning("asked again: the workers cut the requests in flight")
            for proc in self.procs:
                if proc is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)

    # --- workers -----------------------------------------------------------------------

    def live(self) -> int:
        return sum(1 for p in self.procs if p is not None and p.poll() is None)

    def pids(self) -> list[int]:
        """The live workers' process ids, by index (for tests and benchmarks)."""
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def _new_beat_file(self, i: int) -> str | None:
        """Worker ``i``'s fresh heartbeat file (its time now is no beat), in this run's
        directory (made anew when someone removed it: found 2026-12-04, review, the next
        start raised out of the supervisor); None, logged, when none can be made (the worker
        then runs unwatched, as with ``--worker-timeout 0``)."""
        for _ in range(2):
            if self.beat_dir is None:
                try:
                    self.beat_dir = tempfile.mkdtemp(prefix="llm-mesh-workers-")  # mode 0700
                except OSError as exc:
                    log.warning("worker %d: no heartbeat file (%s): not watched for hangs",
                                i, exc)  # fmt: skip
                    return None
                self.beat_dirs.add(self.beat_dir)
            beat = os.path.join(self.beat_dir, f"worker-{i}")
            try:
                with open(beat, "wb"):
                    pass
                self.beat_mtime[i] = os.stat(beat).st_mtime_ns
                return beat
            except OSError:  # its directory removed (or unusable): another one
                self.beat_dir = None
        log.warning("worker %d: no heartbeat file: not watched for hangs", i)
        return None

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        beat = self.beat_file[i] = self._new_beat_file(i)
        self.beat_at[i] = None
        env = dict(self.env if self.env is not None else os.environ)
        env.pop(HEARTBEAT_ENV, None)
        if beat is not None:
            env[HEARTBEAT_ENV] = beat
        if self.sock is None:
            raise RuntimeError("run() binds the socket before any worker starts")
        fd = self.sock.fileno()
        env[LISTEN_FD_ENV] = str(fd)
        proc = subprocess.Popen(
            list(self.command(i)),
            env=env,
            pass_fds=(fd,),  # the one listening socket, the same in every worker
            preexec_fn=_child_setup(os.getpid(), self._libc),
        )
        self.procs[i] = proc
        self.started_at[i] = self.clock()
        self.restart_at[i] = None
        self.hung.discard(i)
        log.info("worker %d started (pid %d)", i, proc.pid)
        return proc

    def _first_up(self) -> int | None:
        """Worker 0 alone until it listens: ``None`` once it does, else the exit code."""
        proc = self._spawn(0)
        deadline = self.clock() + self.start_timeout_s
        while not self.signals:
            code = proc.poll()
            if code is not None:
                log.error("worker 0 could not start (exit code %d): the reason is above", code)
                return code or 1
            if _listening(self.host, self.port):
                return None
            if self.clock() >= deadline:
                log.error(
                    "worker 0 did not listen on %s:%d within %.0f s: stopping",
                    self.host, self.port, self.start_timeout_s,
                )  # fmt: skip
                self.signals += 1
                self._stop()
                return 1
            time.sleep(_POLL_S)
        self._stop()  # asked to stop while it started
        return 0

    def _silent_s(self, i: int, now: float) -> float | None:
        """How long worker ``i`` has been silent, when too long (its beat file read now)."""
        beat = self.beat_file[i]
        if beat is None:  # unwatched
            return None
        try:
            mtime = os.stat(beat).st_mtime_ns
        except OSError:  # removed by someone (found 2026-12-04, review: read as silence,
            made = _remade(beat)  # its healthy worker killed): made again, for its next beat
            if made is not None:
                self.beat_mtime[i] = made  # not a beat itself
            mtime = self.beat_mtime[i]
        if mtime != self.beat_mtime[i]:  # changed, whichever way the wall clock went
            self.beat_mtime[i], self.beat_at[i] = mtime, now
        return self.hang.silent_too_long(now, self.started_at[i], self.beat_at[i])

    def _tend(self) -> None:
        """Kill the workers silent too long; restart those that exited unasked (or were
        killed so), each after its policy's wait."""
        now = self.clock()
        for i, proc in enumerate(self.procs):
            if proc is not None:
                code = proc.poll()
                if code is None:
                    silent = None if i in self.hung else self._silent_s(i, now)
                    if silent is not None:
                        log.warning(
                            "worker %d (pid %d) hung: no heartbeat for %.0f s%s: killing it",
                            i, proc.pid, silent, " since its start" if self.beat_at[i] is None
                            else f" (--worker-timeout {self.hang.timeout_s:g} s)",
                        )  # fmt: skip
                        self.hung.add(i)
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()  # reaped and restarted below, at a next turn
                    continue
                wait = self.policies[i].died(now - self.started_at[i])
                log.warning(
                    "worker %d (pid %d) exited with code %d: restarting it in %.0f s",
                    i, proc.pid, code, wait,
                )  # fmt: skip
                self.procs[i] = None
                self.restart_at[i] = now + wait
            at = self.restart_at[i]
            if at is not None and now >= at:
                self._spawn(i)

    def _stop(self) -> None:
        """Pass the stop on and wait for the workers (killed after ``stop_timeout_s``; None:
        never, as long as they take)."""
        budget = self.stop_timeout_s
        deadline = None if budget is None else self.clock() + budget
        while True:
            self._pass_signals_on()
            if not self.live():
                return
            if deadline is not None and self.clock() >= deadline:
                for i, proc in enumerate(self.procs):
                    if proc is not None and proc.poll() is None:
                        log.error("worker %d (pid %d) did not stop: killed", i, proc.pid)
                        proc.kill()
                        proc.wait()
                        self._killed = True
                return
            time.sleep(_POLL_S)

    def run(self) -> int:
        """Serve until a stop signal (0; 70 when a worker's stop ran past its bound: it
        exited 70 or was killed), or until worker 0 cannot start (its exit code)."""
        own = self.sock is None
        if own:  # PortInUse (or ValueError) before any worker starts
            self.sock = shared_socket(self.host, self.port)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info(
                "registry workers: %s on %s:%d (one socket)",
                counted(self.n, "process", "processes"), self.host, self.port,
            )  # fmt: skip
            code = self._first_up()
            if code is not None:
                return code
            for i in range(1, self.n):
                self._spawn(i)
            while not self.signals:
                self._tend()
                time.sleep(_POLL_S)
            self._stop()
            overdue = [i for i, p in enumerate(self.procs)
                       if p is not None and p.returncode == STOP_OVERDUE_STATUS]  # fmt: skip
            if overdue or self._killed:  # as a lone registry's stop past its bound
                log.warning(
                    "registry workers stopped, not all within their bound (%s): exit status %d",
                    ", ".join(f"worker {i}" for i in overdue) or "killed", STOP_OVERDUE_STATUS,
                )  # fmt: skip
                return STOP_OVERDUE_STATUS
            log.info("registry workers stopped")
            return 0
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            for folder in self.beat_dirs:
                shutil.rmtree(folder, ignore_errors=True)
            self.beat_dirs.clear()
            self.beat_dir = None
            if self.sock is not None:
                self.sock.close()  # (idempotent: closed at the stop's start already)
                if own:
                    self.sock = None
