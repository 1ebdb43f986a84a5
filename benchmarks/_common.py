"""Helpers shared by the benchmarks: ports, a throw-away local mesh, stats, reporting.

Nothing here is product code; the benchmarks import it as ``_common`` (they run as
scripts from ``benchmarks/``, so this directory is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"
LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port the OS says is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct free ports (all bound at once, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def local_mesh(
    *, model: str, engine: str, node_args: Sequence[str] = (), start_timeout_s: float = 300.0
) -> Iterator[Any]:
    """A started ``LocalMesh`` (registry + node subprocesses) on free loopback ports.

    Its ``LLM_MESH_HOME`` is a fresh temporary directory, removed afterwards; the
    processes' logs are in ``$LLM_MESH_HOME/logs`` while it runs.
    """
    from LLM_Mesh.config import Settings
    from LLM_Mesh.local_mesh import LocalMesh

    with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-") as home:
        settings = Settings.from_env({"LLM_MESH_HOME": home})
        reg_port, node_port = free_ports(2)
        mesh = LocalMesh(
            settings,
            model=model,
            engine=engine,
            host=LOOPBACK,
            registry_port=reg_port,
            node_port=node_port,
            node_args=list(node_args),
            start_timeout_s=start_timeout_s,
        )
        mesh.start(progress=lambda m: log(f"  mesh: {m}"))
        try:
            yield mesh
        finally:
            mesh.stop()


@contextlib.contextmanager
def source_tree(path: str | None) -> Iterator[None]:
    """Processes started inside run the package from ``path`` (another checkout: the
    "before" of a before/after comparison in one run); nothing changes when ``None``."""
    if path is None:
        yield
        return
    if not (Path(path) / "LLM_Mesh" / "__init__.py").is_file():
        raise SystemExit(f"--baseline-tree {path}: no LLM_Mesh package there")
    old, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = str(Path(path).resolve())
    os.chdir(path)  # ``python -m`` puts the working directory first on sys.path
    try:
        yield
    finally:
        os.chdir(cwd)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


# the server processes behind each URL a benchmark started (for their CPU time)
SERVER_PIDS: dict[str, list[int]] = {}
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def process_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds the processes ``pids`` (all their threads) have run so far (Linux:
    ``/proc/PID/task/*/schedstat``, nanoseconds; else ``/proc/PID/stat``'s ticks; 0 where
    neither can be read). Differences of it are CPU per request per server process:
    unlike latency, little moved by other work queued on the box."""
    total = 0.0
    for pid in pids:
        tasks = Path(f"/proc/{pid}/task")
        try:
            total += (
                sum(int((t / "schedstat").read_text().split()[0]) for t in tasks.iterdir()) / 1e9
            )
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    return total


BASELINE_LINE = (
    "direct = an unregistered node (no gateway signature to verify); "
    "ours = gateway \u2192 registered node (authenticated: session MAC or signature, checked)"
)


@contextlib.contextmanager
def standalone_node(
    *,
    model: str,
    engine: str,
    node_args: Sequence[str] = (),
    scheme: str = "http",
    verify: Any = True,
    start_timeout_s: float = 300.0,
) -> Iterator[str]:
    """A second node process, started with ``register = false``: the benchmarks' baseline.

    A registered node answers inference only with the gateway's signature
    (``node/gateway_guard.py``); a standalone one serves loopback clients unsigned, so
    calling it directly measures the node without a gateway. Same engine settings as
    the mesh's node (``node_args``), its own throw-away ``LLM_MESH_HOME`` holding a
    ``node.toml`` with ``register = false``, a free loopback port; yields its URL.
    """
    import subprocess

    with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-direct-") as home:
        cfg = Path(home) / "node.toml"
        cfg.write_text("register = false\n")
        port = free_port()
        env = {**os.environ, "LLM_MESH_HOME": home}
        env.pop("LLM_MESH_OPERATOR_TOKEN", None)
        logf = (Path(home) / "node.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", "node", "start", "--config", str(cfg),
             "--engine", engine, "--model", model, "--host", LOOPBACK, "--port", str(port),
             *node_args],
            env=env, stdout=logf, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"{scheme}://{LOOPBACK}:{port}"
        try:
            try:
                wait_http(url + "/v1/models", start_timeout_s, proc, verify=verify)
            except RuntimeError:
                log((Path(home) / "node.log").read_text(errors="replace")[-2000:])
                raise
            log(f"  direct: unregistered node at {url}")
            SERVER_PIDS[url] = [proc.pid]
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            logf.close()


def operator_token(home: str | Path, name: str = "bench") -> str:
    """An operator token in the registry whose ``LLM_MESH_HOME`` is ``home`` (made before
    the registry starts): nodes need one to register."""
    import asyncio

    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
    from LLM_Mesh.registry.store import SqlStore

    async def go() -> str:
        settings = Settings.from_env({"LLM_MESH_HOME": str(home)})
        store = SqlStore(settings.effective_database_url)
        await store.open()
        try:
            await ensure_admin_key(settings, store)
            token = await add_operator(store, name, replace=True)
        finally:
            await store.close()
        if token is None:
            raise RuntimeError(f"could not make an operator token in {home}")
        return token

    return asyncio.run(go())


BENCH_BALANCE = 10**15  # micro-NetworkTokens granted to a benchmark's key: never runs out


def make_api_key(home: str | Path, name: str = "bench") -> str:
    """A client API key (no limits) in the mesh whose ``LLM_MESH_HOME`` is ``home``, its
    user granted :data:`BENCH_BALANCE` (settlement charges every request): the gateway
    limits anonymous clients (``LLM_MESH_ANONYMOUS_RPM``), a keyed client is what a
    benchmark's load is."""
    import asyncio

    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.api_keys import create_api_key
    from LLM_Mesh.registry.ledger_grant import grant
    from LLM_Mesh.registry.store import SqlStore

    async def go() -> str:
        settings = Settings.from_env({"LLM_MESH_HOME": str(home)})
        store = SqlStore(settings.effective_database_url)
        await store.open()
        try:
            made = await create_api_key(store, name=name)
            if made is not None:
                await grant(store, made[1].key_id, BENCH_BALANCE)
        finally:
            await store.close()
        if made is None:
            raise RuntimeError(f"an API key named {name!r} exists in {home}")
        return made[0]

    return asyncio.run(go())


def wait_http(url: str, timeout_s: float, proc: Any = None, verify: Any = True) -> None:
    """Poll ``url`` until it answers any HTTP status < 500; raise on timeout or child exit."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0, verify=verify) as c:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with code {proc.returncode} while starting")
            try:
                if c.get(url).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def signal_dump(pid: int, sig: int, path: Path, tries: int = 100) -> dict[str, Any]:
    """Signal ``pid`` to write its JSON dump to ``path`` (``gw_profile`` / ``gw_stages``'s
    handlers) and read it: ``{}`` when none came within ``tries`` × 50 ms."""
    path.unlink(missing_ok=True)
    os.kill(pid, sig)
    for _ in range(tries):
        time.sleep(0.05)
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(path.read_text()))
    return {}


def pct(sorted_xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..1)."""
    if not sorted_xs:
        return float("nan")
    i = min(len(sorted_xs) - 1, max(0, math.ceil(q * len(sorted_xs)) - 1))
    return float(sorted_xs[i])


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def machine() -> dict[str, Any]:
    """What the numbers were measured on (load average included: the box is shared)."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def machine_line() -> str:
    m = machine()
    la = m["loadavg_1_5_15"]
    return (
        f"python {m['python']} on {m['machine']}, {m['cpus']} CPUs, "
        f"load average {la[0]} / {la[1]} / {la[2]}, {m['date_utc']} UTC"
    )


def log(msg: str) -> None:
    """Progress goes to stderr; results go to stdout."""
    print(msg, file=sys.stderr, flush=True)


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench-results/{name}-{timestamp}.json`` (git-ignored) and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


async def pg_database(admin_url: str) -> tuple[str, Any]:
    """A fresh PostgreSQL database for one run (asyncpg, via the admin URL): its URL and an
    async ``drop`` that removes it."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"llm_mesh_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url.replace("+asyncpg", ""), timeout=5)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = admin_url.rsplit("/", 1)[0]

    async def drop() -> None:
        c = await asyncpg.connect(admin_url.replace("+asyncpg", ""), timeout=5)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return f"{base}/{name}", drop
