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
import subprocess
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
    *,
    model: str,
    engine: str,
    node_args: Sequence[str] = (),
    start_timeout_s: float = 300.0,
    database_url: str | None = None,
    registry_workers: int = 1,
) -> Iterator[Any]:
    """A started ``LocalMesh`` (registry + node subprocesses) on free loopback ports.

    Its ``LLM_MESH_HOME`` is a fresh temporary directory, removed afterwards; the
    processes' logs are in ``$LLM_MESH_HOME/logs`` while it runs. ``database_url``: the
    store (default SQLite in the home); ``registry_workers`` > 1: ``registry serve
    --workers N`` (needs a PostgreSQL ``database_url``).
    """
    from LLM_Mesh.config import Settings
    from LLM_Mesh.local_mesh import LocalMesh

    with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-") as home:
        env = {"LLM_MESH_HOME": home}
        if database_url:
            env["LLM_MESH_DATABASE_URL"] = database_url
        settings = Settings.from_env(env)
        reg_port, node_port = free_ports(2)
        if _other_tree() is not None:  # a "before" tree: its own code makes its store
            spec = {
                "home": home, "model": model, "engine": engine, "host": LOOPBACK,
                "registry_port": reg_port, "node_port": node_port,
                "node_args": list(node_args), "start_timeout_s": start_timeout_s,
                "database_url": database_url,
            }  # fmt: skip
            HOME_TREES[home] = _other_tree()
            saved = os.environ.get("LLM_MESH_REGISTRY_WORKERS")
            os.environ["LLM_MESH_REGISTRY_WORKERS"] = str(registry_workers)  # its registry's
            try:
                with _mesh_in_tree(spec, settings) as mesh:
                    if saved is None:  # the runner has it: this process's other meshes not
                        del os.environ["LLM_MESH_REGISTRY_WORKERS"]
                    else:
                        os.environ["LLM_MESH_REGISTRY_WORKERS"] = saved
                    yield mesh
            finally:
                HOME_TREES.pop(home, None)
                if saved is None:
                    os.environ.pop("LLM_MESH_REGISTRY_WORKERS", None)
                else:
                    os.environ["LLM_MESH_REGISTRY_WORKERS"] = saved
            return
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
        with environ({"LLM_MESH_REGISTRY_WORKERS": str(registry_workers)}):  # its registry's
            mesh.start(progress=lambda m: log(f"  mesh: {m}"))
        try:
            yield mesh
        finally:
            mesh.stop()


# the gateway probes' mesh: a SIMULATED node that answers at once, with room for their load
SIM_MODEL = "mistral-7b"
SIM_FAST_NODE_ARGS = ["--sim-ttft-s", "0", "--sim-tokens-per-s", "1000000",
                      "--max-concurrency", "64", "--max-queue", "64"]  # fmt: skip
SIM_CHAT_BODY = {"model": SIM_MODEL, "messages": [{"role": "user", "content": "Say hi"}],
                 "max_tokens": 1}  # fmt: skip


def sim_mesh(stack: contextlib.ExitStack, tree: str | None, preload: Path | None = None) -> Any:
    """A :func:`local_mesh` of :data:`SIM_MODEL` on a fast SIMULATED node
    (:data:`SIM_FAST_NODE_ARGS`), run by the code of checkout ``tree`` (:func:`source_tree`;
    ``None``: this one), its processes importing ``preload``'s ``sitecustomize`` first
    (:func:`preloaded`: ``gw_profile``, ``gw_stages``, ``gw_timeline``); open until
    ``stack`` closes."""
    first = preloaded(preload) if preload else contextlib.nullcontext()  # inside the tree's
    with source_tree(tree), first:
        return stack.enter_context(
            local_mesh(model=SIM_MODEL, engine="sim", node_args=SIM_FAST_NODE_ARGS)
        )


def registry_pid(mesh: Any) -> int:
    """The process id of a :func:`local_mesh`'s registry."""
    return int(next(c.proc.pid for c in mesh._children if c.name == "registry"))


def keyed_headers(mesh: Any) -> dict[str, str]:
    """Headers of a keyed client of a :func:`local_mesh` (:func:`make_api_key`)."""
    return {"Authorization": f"Bearer {make_api_key(mesh.settings.home)}"}


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` inside (processes started there inherit them), each
    variable as it was afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def preloaded(folder: str | Path) -> Iterator[None]:
    """Python processes started inside import ``folder``'s ``sitecustomize`` first (an
    instrumentation or a change: ``gw_profile``, ``gw_stages``, ``gw_timeline``,
    ``ttft_probe``, ``noauth``): ``folder`` put before ``PYTHONPATH``'s entries (a
    :func:`source_tree`'s too)."""
    pp = os.environ.get("PYTHONPATH")
    with environ({"PYTHONPATH": str(folder) + (os.pathsep + pp if pp else "")}):
        yield


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (Linux ``/proc/PID/task/*/children``): a
    registry with ``--workers N`` serves from its children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                continue
    return out


def tree_pythonpath(tree: str | Path) -> str:
    """``PYTHONPATH`` for a process that runs the package from ``tree``: the tree first,
    then the entries already set that hold no checkout of the package (a ``--target``
    folder of carried dependencies stays; another tree's package does not)."""
    keep = [
        entry
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry and not (Path(entry) / "LLM_Mesh" / "__init__.py").is_file()
    ]
    return os.pathsep.join([str(Path(tree).resolve()), *keep])


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
    os.environ["PYTHONPATH"] = tree_pythonpath(path)
    os.chdir(path)  # ``python -m`` puts the working directory first on sys.path
    try:
        yield
    finally:
        os.chdir(cwd)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


# the checkout whose code made each benchmark mesh's home, where it is not this one
HOME_TREES: dict[str, Path | None] = {}


def _other_tree() -> Path | None:
    """The checkout :func:`source_tree` points processes at, when it is not this one."""
    given = os.environ.get("PYTHONPATH")
    if not given:
        return None
    here = Path(__file__).resolve().parent.parent
    for entry in given.split(os.pathsep):  # the entry with the package (not gw_profile's)
        there = Path(entry).resolve()
        if (there / "LLM_Mesh" / "__init__.py").is_file():
            return None if there == here else there
    return None


_MESH_RUNNER = """
import json, sys
from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import LocalMesh
spec = json.loads(sys.argv[1])
env = {"LLM_MESH_HOME": spec.pop("home")}
if spec.get("database_url"):
    env["LLM_MESH_DATABASE_URL"] = spec["database_url"]
spec.pop("database_url", None)
mesh = LocalMesh(Settings.from_env(env), **spec)
mesh.start(progress=lambda m: print("  mesh: " + m, file=sys.stderr, flush=True))
try:
    print(json.dumps({"registry_url": mesh.registry_url,
                      "children": [[c.name, c.proc.pid] for c in mesh._children]}), flush=True)
    sys.stdin.read()
finally:
    mesh.stop()
"""


@contextlib.contextmanager
def _mesh_in_tree(spec: dict[str, Any], settings: Any) -> Iterator[Any]:
    """A ``LocalMesh`` started by the other tree's own code in a child process (its store
    made and migrated by that code: this process's package would migrate it to a schema
    the other tree does not know); yields what the benchmarks read of a mesh."""
    from types import SimpleNamespace

    runner = subprocess.Popen(
        [sys.executable, "-c", _MESH_RUNNER, json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_other_tree(),
    )  # fmt: skip
    try:
        assert runner.stdout is not None
        line = runner.stdout.readline()
        if not line:
            raise RuntimeError(f"the mesh of {_other_tree()} did not start (exit {runner.wait()})")
        info = json.loads(line)
        children = [
            SimpleNamespace(name=name, proc=SimpleNamespace(pid=pid))
            for name, pid in info["children"]
        ]
        yield SimpleNamespace(
            settings=settings, registry_url=info["registry_url"], _children=children
        )
    finally:
        if runner.stdin is not None:
            runner.stdin.close()
        try:
            runner.wait(60)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait(5)


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


def _in_tree(func: str, home: str | Path, name: str, database_url: str | None = None) -> str | None:
    """``func(home, name)`` of this module run by the code of the tree whose mesh uses
    ``home`` (:func:`local_mesh` under :func:`source_tree`), in a child process: a store
    opened by this process's package would migrate that tree's database to a schema the
    tree does not know. ``None`` when ``home`` is this tree's (run it here)."""
    tree = HOME_TREES.get(str(home))
    if tree is None:
        return None
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _common; "
        f"print(_common.{func}(sys.argv[2], sys.argv[3], here=True, "
        "**({'database_url': sys.argv[4]} if len(sys.argv) > 4 else {})))"
    )
    db = [database_url] if database_url else []  # a store that is not the home's file
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(home), name, *db],
        capture_output=True, text=True, timeout=120, check=False, cwd=tree,
        env={**os.environ, "PYTHONPATH": tree_pythonpath(tree)},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{func} in {home} failed: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def operator_token(home: str | Path, name: str = "bench", *, here: bool = False) -> str:
    """An operator token in the registry whose ``LLM_MESH_HOME`` is ``home`` (made before
    the registry starts): nodes need one to register. Made by the package the registry
    will run (:func:`_in_tree`) unless ``here``."""
    made = None if here else _in_tree("operator_token", home, name)
    if made is not None:
        return made
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


def make_api_key(
    home: str | Path, name: str = "bench", *, here: bool = False, database_url: str | None = None
) -> str:
    """A client API key (no limits) in the mesh whose ``LLM_MESH_HOME`` is ``home``, its
    user granted :data:`BENCH_BALANCE` (settlement charges every request): the gateway
    limits anonymous clients (``LLM_MESH_ANONYMOUS_RPM``), a keyed client is what a
    benchmark's load is. Made by the package the registry will run (:func:`_in_tree`)
    unless ``here``."""
    made = None if here else _in_tree("make_api_key", home, name, database_url)
    if made is not None:
        return made
    import asyncio

    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.api_keys import create_api_key
    from LLM_Mesh.registry.ledger_grant import grant
    from LLM_Mesh.registry.store import SqlStore

    async def go() -> str:
        env = {"LLM_MESH_HOME": str(home)}
        if database_url:  # the mesh's store is not its home's SQLite file
            env["LLM_MESH_DATABASE_URL"] = database_url
        settings = Settings.from_env(env)
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


async def pg_recreate(admin_dsn: str, name: str, *, create: bool) -> None:
    """The database ``name`` dropped (its sessions ended first), then made anew, empty, if
    ``create``; ``admin_dsn``: asyncpg's DSN of a database to work from (``postgres``)."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
