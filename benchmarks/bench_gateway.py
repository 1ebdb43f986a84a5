"""The gateway's added latency and throughput over calling a node directly, vs LiteLLM.

Method: one local mesh (registry+gateway and one registered ``sim`` node, separate
processes, loopback, throw-away LLM_MESH_HOME) and a second ``sim`` node with the same
engine settings started with ``register = false``. The sim engine is SIMULATED: it answers at once
(``--sim-ttft-s 0``, 10^6 tokens/s, ``max_tokens`` 1), so what is measured is the HTTP
path, not a model. "ours" sends a client API key made for the run (no limits: the
gateway rate-limits anonymous clients); the others get LiteLLM's master key. Targets, all ``POST /v1/chat/completions`` (non-streamed, the
same body) on 127.0.0.1:

  direct   the unregistered node, called directly (no gateway signature to verify:
           a registered node answers inference only to its gateway)
  ours     our gateway in front of the registered node: every forwarded request
           signed by the gateway and verified by the node (authentication on)
  litellm  LiteLLM's proxy (``litellm --num_workers 1``) in front of the unregistered
           node (a proxy without our signature could not reach the registered one)
  ours-s0  (with ``--settlement both``) a second mesh from this tree with settlement off
           (``LLM_MESH_SETTLEMENT=0``: no reservation before forwarding, no payment write
           before the answer), so settlement's share of "ours" shows in the same run
  ours-a0  (with ``--no-auth-target``) a third mesh from this tree whose registry and node
           run with the gateway → node authentication patched out, for the benchmark only
           (``benchmarks/noauth/sitecustomize.py``: no MAC or signature made, none checked;
           the package has no such switch): authentication's share of "ours"
  ours-wN  (with ``--gateway-workers N[,M...]``) a mesh from this tree whose registry runs
           ``registry serve --workers N`` on a fresh PostgreSQL database
           (``$LLM_MESH_TEST_PG_URL``'s server): N gateway processes on one port, each a
           replica; its own registered sim node, as every mesh has
  before-wN  (with both ``--gateway-workers`` and ``--baseline-tree``) the same from the
           other checkout, on a fresh database of its own
  null     a canned-answer asyncio HTTP server: the load generator's own ceiling
  before   (with ``--baseline-tree DIR``) a second mesh, registry and registered node
           both run from another checkout (e.g. ``git archive COMMIT | tar -x -C DIR``):
           the same measurement of an older version, interleaved in the same run;
           its added figures are over ``d-before``, that checkout's unregistered node

Phases, each interleaved over the targets in rotating order (``--chunks``, so drift on the
shared machine hits every target alike), after a warm-up of every target:

  1. one at a time: one ``httpx.Client`` (keep-alive), ``--sequential`` requests
     per target; latency from ``time.perf_counter`` around each call.
  2. ``--concurrency`` at once: asyncio (uvloop when installed) + one keep-alive
     client session: ``aiohttp`` when installed (it comes with the bench extra; it
     costs the generator far less CPU per request than ``httpx.AsyncClient``, the
     fallback); ``--concurrent`` requests per target;
     requests/s = requests / wall time of that target's chunks.

Added latency = percentile(via) - percentile(direct). The load generator's CPU time
per request (``time.process_time``) is printed for each target, and the null target
shows how many requests/s it can drive at all, so one can see it is not the
bottleneck. The server CPU a request (``/proc``, every thread of the target's processes)
is split: "of it gateway" is the registry's processes alone, the rest its node's. Goals: ours p50 <= 1.5 ms and p99 <= 4 ms added one at a time; vs
LiteLLM several times less added latency and >= 5x its requests/s at 10 concurrent.
Ratios to the direct node, measured in the same run (issue 7): added p50 / direct
p50 one at a time (goal <= 1.0x) and ours req/s / direct req/s at ``--concurrency``
(goal >= 0.6x).

Authentication (issue 8): the package has no gateway path without it (no switch to turn
it off, and a registered node refuses unauthenticated requests). Its cost is included in
"ours": the gateway's MAC (the node's session key; an Ed25519 signature where none is
agreed) and the node's check both sit inside ours minus direct. ``--no-auth-target``
adds ``ours-a0``, the same tree with both patched out in the benchmark's own processes
(``benchmarks/noauth/sitecustomize.py``), so ours / ours-a0 is authentication's share in
one run; ``bench_gateway_auth.py`` measures its CPU alone.

    .venv/bin/python benchmarks/bench_gateway.py [--sequential 1000] [--concurrent 2000]
        [--baseline-tree DIR] [--settlement on|off|both] [--no-auth-target]
        [--gateway-workers N[,M...]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    BASELINE_LINE,
    LOOPBACK,
    SERVER_PIDS,
    descendants,
    environ,
    free_port,
    local_mesh,
    log,
    machine_line,
    make_api_key,
    pct,
    pg_database,
    preloaded,
    process_cpu_s,
    source_tree,
    standalone_node,
    wait_http,
    write_json,
)

MODEL = "mistral-7b"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"  # --gateway-workers' server
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 1}
# LiteLLM's proxy refuses to start without a master key; every target gets the same header
MASTER_KEY = "sk-llm-mesh-bench-3f9c1e7a5b2d4086"
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
# the gateway limits anonymous clients: "ours" gets a client API key of its own (main)
HEADERS_BY_URL: dict[str, dict[str, str]] = {}
LITELLM_PIDS: dict[str, int] = {}  # url -> the proxy's process (its workers are children)
TARGET_ORDER = ("direct", "ours", "ours-s0", "ours-a0", *(f"ours-w{n}" for n in range(1, 65)),
                "d-before", "before", *(f"before-w{n}" for n in range(1, 65)),
                "litellm", "null")  # fmt: skip
BASE_OF = {"before": "d-before"}  # whose added figures are over which direct node
AUTH_LINE = (
    "authentication: the package has no gateway path without it, so its cost (session MAC, "
    "or signature) is included in ours; --no-auth-target adds ours-a0 (patched out in the "
    "benchmark's processes) for its share; bench_gateway_auth.py measures its CPU alone"
)

NULL_SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    BODY = json.dumps({"id": "x", "object": "chat.completion", "created": 0,
        "model": "mistral-7b", "choices": [{"index": 0, "finish_reason": "length",
        "message": {"role": "assistant", "content": "the"}}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}).encode()
    HEAD = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: "
            + str(len(BODY)).encode() + b"\\r\\n\\r\\n")
    async def handle(r, w):
        try:
            while True:
                head = await r.readuntil(b"\\r\\n\\r\\n")
                n = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                if n:
                    await r.readexactly(n)
                w.write(HEAD + BODY)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()
    async def main():
        s = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        async with s:
            await s.serve_forever()
    asyncio.run(main())
    """
)


# the registry's processes behind each mesh URL (the rest of SERVER_PIDS: its node)
GATEWAY_PIDS: dict[str, list[int]] = {}


@dataclass
class Series:
    lat_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0  # the target's server processes (gateway + node, or node)
    gateway_cpu_s: float = 0.0  # the registry's processes alone (0 for a direct node)
    errors: int = 0

    @property
    def n(self) -> int:
        return len(self.lat_s)


@contextmanager
def null_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NULL_SERVER, str(port)])
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_http(url + "/", 20.0, proc)
        SERVER_PIDS[url] = [proc.pid]
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def litellm_proxy(node_url: str, timeout_s: float) -> Iterator[tuple[str | None, str]]:
    """Yield (url, note): url is None when LiteLLM could not be started (note says why)."""
    exe = shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")
    if exe is None:
        yield None, "the `litellm` command is not installed (pip install -e '.[bench]')"
        return
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        cfg = Path(tmp) / "cfg.yaml"
        cfg.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {node_url}/v1\n"
            "      api_key: x\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "general_settings:\n"
            f"  master_key: {MASTER_KEY}\n"
        )
        port = free_port()
        env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_LOCAL_MODEL_COST_MAP="True",
                   LITELLM_TELEMETRY="False", NO_DOCS="True")  # fmt: skip
        log_path = Path(tmp) / "litellm.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [exe, "--config", str(cfg), "--host", LOOPBACK, "--port", str(port),
                 "--num_workers", "1"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True,
            )  # fmt: skip
            url = f"http://{LOOPBACK}:{port}"
            try:
                t0 = time.monotonic()
                try:
                    wait_http(url + "/health/liveliness", timeout_s, proc)
                except RuntimeError as exc:
                    tail = log_path.read_text(errors="replace").splitlines()[-15:]
                    yield None, f"LiteLLM did not start: {exc}\n" + "\n".join(tail)
                    return
                log(f"  litellm up at {url} after {time.monotonic() - t0:.1f} s")
                LITELLM_PIDS[url] = proc.pid  # bench_rss.py samples its memory
                yield url, f"litellm {_litellm_version()}"
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)


def _litellm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:
        return "?"


@contextmanager
def no_auth_mesh(node_args: list[str]) -> Iterator[Any]:
    """Target ``ours-a0``'s mesh: this tree's registry and sim node with the gateway -> node
    authentication patched out in both processes (``noauth/sitecustomize.py``)."""
    noauth = Path(__file__).resolve().parent / "noauth"
    with contextlib.ExitStack() as stack:
        # set while its processes start (they inherit it), not for meshes started later
        with preloaded(noauth), environ({"LLM_MESH_BENCH_NO_AUTH": "1"}):
            mesh = stack.enter_context(local_mesh(model=MODEL, engine="sim", node_args=node_args))
        yield mesh


def check(client: httpx.Client, name: str, url: str) -> None:
    r = client.post(url + "/v1/chat/completions", json=BODY, headers=_headers(url))
    if r.status_code != 200:
        raise RuntimeError(f"{name} answered {r.status_code}: {r.text[:300]}")
    data = r.json()
    if not data.get("choices"):
        raise RuntimeError(f"{name} answered without choices: {r.text[:300]}")


def _headers(url: str) -> dict[str, str]:
    return HEADERS_BY_URL.get(url, HEADERS)


def run_sequential(client: httpx.Client, url: str, n: int, s: Series) -> None:
    endpoint = url + "/v1/chat/completions"
    headers = _headers(url)
    clock = time.perf_counter
    pids = SERVER_PIDS.get(url, [])
    gpids = GATEWAY_PIDS.get(url, [])
    c0, w0, sc0, g0 = time.process_time(), clock(), process_cpu_s(pids), process_cpu_s(gpids)
    for _ in range(n):
        t0 = clock()
        r = client.post(endpoint, json=BODY, headers=headers)
        t1 = clock()
        if r.status_code == 200:
            s.lat_s.append(t1 - t0)
        else:
            s.errors += 1
    s.wall_s += clock() - w0
    s.cpu_s += time.process_time() - c0
    s.server_cpu_s += process_cpu_s(pids) - sc0
    s.gateway_cpu_s += process_cpu_s(gpids) - g0


async def run_concurrent(client: Any, url: str, n: int, concurrency: int, s: Series) -> None:
    """``client``: an ``aiohttp.ClientSession`` (lighter: the generator must not be the
    bottleneck) or, without aiohttp, an ``httpx.AsyncClient``."""
    endpoint = url + "/v1/chat/completions"
    clock = time.perf_counter
    left = n
    payload = json.dumps(BODY).encode()
    headers = {**_headers(url), "Content-Type": "application/json"}
    is_httpx = isinstance(client, httpx.AsyncClient)

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = clock()
            try:
                if is_httpx:
                    r = await client.post(endpoint, content=payload, headers=headers)
                    ok = r.status_code == 200
                else:
                    async with client.post(endpoint, data=payload, headers=headers) as ar:
                        await ar.read()
                        ok = ar.status == 200
            except Exception:  # any transport failure counts as an error
                ok = False
            t1 = clock()
            if ok:
                s.lat_s.append(t1 - t0)
            else:
                s.errors += 1

    pids = SERVER_PIDS.get(url, [])
    gpids = GATEWAY_PIDS.get(url, [])
    c0, w0, sc0, g0 = time.process_time(), clock(), process_cpu_s(pids), process_cpu_s(gpids)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    s.wall_s += clock() - w0
    s.cpu_s += time.process_time() - c0
    s.server_cpu_s += process_cpu_s(pids) - sc0
    s.gateway_cpu_s += process_cpu_s(gpids) - g0


def rotations(targets: dict[str, str], chunks: int) -> Iterator[list[tuple[str, str]]]:
    items = list(targets.items())
    for i in range(chunks):
        k = i % len(items)
        yield items[k:] + items[:k]


def bench(targets: dict[str, str], args: Any) -> dict[str, dict[str, Series]]:
    seq = {name: Series() for name in targets}
    conc = {name: Series() for name in targets}
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    with httpx.Client(timeout=30.0) as client:
        for name, url in targets.items():
            check(client, name, url)
        log("warm-up (one at a time)")
        for url in targets.values():
            run_sequential(client, url, args.warmup, Series())
        chunks = args.chunks
        log(f"phase 1: one at a time, {args.sequential} per target in {chunks} chunks")
        for order in rotations(targets, chunks):
            for name, url in order:
                run_sequential(client, url, args.sequential // chunks, seq[name])
            log("  " + ", ".join(f"{k} {_p50(seq[k]):.2f} ms" for k in targets))

    async def phase2() -> None:
        async with _async_client(args.concurrency, limits) as ac:
            log(f"warm-up ({args.concurrency} concurrent)")
            for url in targets.values():
                await run_concurrent(ac, url, args.warmup, args.concurrency, Series())
            log(
                f"phase 2: {args.concurrency} concurrent, {args.concurrent} per target in "
                f"{args.chunks} chunks"
            )
            for order in rotations(targets, args.chunks):
                for name, url in order:
                    await run_concurrent(
                        ac, url, args.concurrent // args.chunks, args.concurrency, conc[name]
                    )
                log("  " + ", ".join(f"{k} {conc[k].n / conc[k].wall_s:.0f}/s" for k in targets))

    _run(phase2)
    return {"sequential": seq, "concurrent": conc}


@asynccontextmanager
async def _async_client(concurrency: int, limits: httpx.Limits) -> AsyncIterator[Any]:
    try:
        import aiohttp
    except ImportError:
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as ac:
            yield ac
        return
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=60.0)
    ) as session:
        yield session


def load_generator() -> str:
    try:
        import aiohttp
    except ImportError:
        return f"httpx {httpx.__version__} AsyncClient"
    return f"aiohttp {aiohttp.__version__} ClientSession"


def _run(fn: Callable[[], Any]) -> None:
    try:
        import uvloop

        uvloop.run(fn())
    except ImportError:
        asyncio.run(fn())


def _p50(s: Series) -> float:
    return pct(sorted(s.lat_s), 0.5) * 1e3


def summarize(series: dict[str, Series]) -> dict[str, dict[str, float]]:
    out = {}
    for name, s in series.items():
        xs = sorted(s.lat_s)
        out[name] = {
            "n": s.n,
            "errors": s.errors,
            "p50_ms": pct(xs, 0.50) * 1e3,
            "p90_ms": pct(xs, 0.90) * 1e3,
            "p99_ms": pct(xs, 0.99) * 1e3,
            "max_ms": xs[-1] * 1e3 if xs else float("nan"),
            "rps": s.n / s.wall_s if s.wall_s else float("nan"),
            "client_cpu_us_per_req": s.cpu_s / max(1, s.n + s.errors) * 1e6,
            "server_cpu_us_per_req": s.server_cpu_s / max(1, s.n + s.errors) * 1e6,
            "gateway_cpu_us_per_req": s.gateway_cpu_s / max(1, s.n + s.errors) * 1e6,
        }
    return out


def print_table(title: str, stats: dict[str, dict[str, float]]) -> None:
    d = stats["direct"]
    print(f"\n{title}")
    print(
        f"{'target':<8} {'n':>5} {'err':>4} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'+p50 ms':>8} {'+p99 ms':>8} {'req/s':>7} {'client CPU µs/req':>17} "
        f"{'server CPU µs/req':>17} {'of it gateway':>13}"
    )
    for name in TARGET_ORDER:
        if name not in stats:
            continue
        s = stats[name]
        d = stats.get(BASE_OF.get(name, "direct"), stats["direct"])
        add = name not in ("direct", "d-before", "null")
        a50 = f"{s['p50_ms'] - d['p50_ms']:>8.2f}" if add else f"{'':>8}"
        a99 = f"{s['p99_ms'] - d['p99_ms']:>8.2f}" if add else f"{'':>8}"
        print(
            f"{name:<8} {s['n']:>5} {s['errors']:>4} {s['p50_ms']:>7.2f} {s['p90_ms']:>7.2f} "
            f"{s['p99_ms']:>7.2f} {s['max_ms']:>7.1f} {a50} {a99} {s['rps']:>7.0f} "
            f"{s['client_cpu_us_per_req']:>17.0f} {s['server_cpu_us_per_req']:>17.0f} "
            f"{s['gateway_cpu_us_per_req']:>13.0f}"
        )


def ratios(seq: dict[str, dict[str, float]], conc: dict[str, dict[str, float]]) -> dict[str, float]:
    """Ours against the direct node, both measured in this run."""
    d, o = seq["direct"], seq["ours"]
    out = {
        "added_p50_ms": o["p50_ms"] - d["p50_ms"],
        "direct_p50_ms": d["p50_ms"],
        "added_p50_over_direct_p50": (o["p50_ms"] - d["p50_ms"]) / d["p50_ms"],
        "added_p99_over_direct_p99": (o["p99_ms"] - d["p99_ms"]) / d["p99_ms"],
        "concurrent_rps_ours_over_direct": conc["ours"]["rps"] / conc["direct"]["rps"],
        # CPU per request of the server processes: gateway + node over the node alone
        "added_server_cpu_us": o["server_cpu_us_per_req"] - d["server_cpu_us_per_req"],
        "server_cpu_ours_over_direct": o["server_cpu_us_per_req"] / d["server_cpu_us_per_req"]
        if d["server_cpu_us_per_req"]
        else float("nan"),
    }
    if "before" in seq:  # over the before's own direct node where it ran
        b, db = seq["before"], seq.get("d-before", d)
        cb = conc.get("d-before", conc["direct"])
        out["before_added_p50_ms"] = b["p50_ms"] - db["p50_ms"]
        out["before_added_p50_over_direct_p50"] = (b["p50_ms"] - db["p50_ms"]) / db["p50_ms"]
        out["concurrent_rps_before_over_direct"] = conc["before"]["rps"] / cb["rps"]
        out["before_added_server_cpu_us"] = b["server_cpu_us_per_req"] - db["server_cpu_us_per_req"]
        out["concurrent_rps_ours_over_before"] = conc["ours"]["rps"] / conc["before"]["rps"]
    if "ours-s0" in seq:  # this tree with settlement off, over the same direct node
        z = seq["ours-s0"]
        out["settlement_off_added_p50_ms"] = z["p50_ms"] - d["p50_ms"]
        out["settlement_off_added_p50_over_direct_p50"] = (z["p50_ms"] - d["p50_ms"]) / d["p50_ms"]
        out["concurrent_rps_settlement_off_over_direct"] = (
            conc["ours-s0"]["rps"] / conc["direct"]["rps"]
        )
        out["settlement_off_added_server_cpu_us"] = (
            z["server_cpu_us_per_req"] - d["server_cpu_us_per_req"]
        )
    for name in (k for k in seq if k.startswith(("ours-w", "before-w"))):  # --gateway-workers
        w = seq[name]
        out[f"{name}_added_p50_over_direct_p50"] = (w["p50_ms"] - d["p50_ms"]) / d["p50_ms"]
        out[f"concurrent_rps_{name}_over_direct"] = conc[name]["rps"] / conc["direct"]["rps"]
        out[f"{name}_added_server_cpu_us"] = w["server_cpu_us_per_req"] - d["server_cpu_us_per_req"]
    if "ours-a0" in seq:  # this tree without the gateway -> node authentication
        a = seq["ours-a0"]
        out["auth_off_added_p50_ms"] = a["p50_ms"] - d["p50_ms"]
        out["auth_on_over_off_added_p50"] = (o["p50_ms"] - d["p50_ms"]) / (
            a["p50_ms"] - d["p50_ms"]
        )
        out["concurrent_rps_auth_off_over_direct"] = conc["ours-a0"]["rps"] / conc["direct"]["rps"]
    return out


def verdicts(
    seq: dict[str, dict[str, float]], conc: dict[str, dict[str, float]], concurrency: int
) -> list[str]:
    out = []
    d, o = seq["direct"], seq["ours"]
    a50, a99 = o["p50_ms"] - d["p50_ms"], o["p99_ms"] - d["p99_ms"]
    out.append(f"ours p50 added {a50:.2f} ms <= 1.5 ms: {'MET' if a50 <= 1.5 else 'NOT MET'}")
    out.append(f"ours p99 added {a99:.2f} ms <= 4 ms: {'MET' if a99 <= 4.0 else 'NOT MET'}")
    r = ratios(seq, conc)
    x50 = r["added_p50_over_direct_p50"]
    out.append(
        f"ours p50 added / direct p50 (one at a time) = {a50:.2f} / {d['p50_ms']:.2f} ms = "
        f"{x50:.2f}x (goal <= 1.0x: {'MET' if x50 <= 1.0 else 'NOT MET'}); p99: "
        f"{r['added_p99_over_direct_p99']:.2f}x"
    )
    xr = r["concurrent_rps_ours_over_direct"]
    out.append(
        f"at {concurrency} concurrent: ours {conc['ours']['rps']:.0f} req/s / direct "
        f"{conc['direct']['rps']:.0f} req/s = {xr:.2f}x (goal >= 0.6x: "
        f"{'MET' if xr >= 0.6 else 'NOT MET'})"
    )
    dc, oc = d["server_cpu_us_per_req"], o["server_cpu_us_per_req"]
    line = (
        f"server CPU per request (one at a time): direct node {dc:.0f} µs, ours gateway + node "
        f"{oc:.0f} µs: added {oc - dc:.0f} µs = {(oc - dc) / dc if dc else float('nan'):.2f}x "
        f"the node's"
    )
    if "before" in seq:
        db = seq.get("d-before", d)
        bc, dbc = seq["before"]["server_cpu_us_per_req"], db["server_cpu_us_per_req"]
        line += (
            f"; before: its node {dbc:.0f} µs, gateway + node {bc:.0f} µs, added {bc - dbc:.0f} µs"
        )
    out.append(line)
    if "before" in seq:
        db = seq.get("d-before", d)
        cb = conc.get("d-before", conc["direct"])
        b50 = seq["before"]["p50_ms"] - db["p50_ms"]
        xb = conc["ours"]["rps"] / conc["before"]["rps"]
        out.append(
            f"before (--baseline-tree, over its own direct node): added p50 {b50:.2f} ms = "
            f"{b50 / db['p50_ms']:.2f}x (ours {x50:.2f}x); at {concurrency} concurrent "
            f"{conc['before']['rps']:.0f} req/s = {conc['before']['rps'] / cb['rps']:.2f}x its "
            f"direct (ours {xr:.2f}x); ours / before req/s = {xb:.2f}x"
        )
    if "ours-s0" in seq:
        z50 = r["settlement_off_added_p50_ms"]
        out.append(
            f"settlement off (ours-s0, same tree): added p50 {z50:.2f} ms = "
            f"{r['settlement_off_added_p50_over_direct_p50']:.2f}x direct (ours, on: "
            f"{x50:.2f}x); at {concurrency} concurrent "
            f"{r['concurrent_rps_settlement_off_over_direct']:.2f}x direct (ours {xr:.2f}x); "
            f"server CPU added {r['settlement_off_added_server_cpu_us']:.0f} µs (ours "
            f"{oc - dc:.0f} µs)"
        )
    for name in (k for k in seq if k.startswith(("ours-w", "before-w"))):
        out.append(
            f"{name} (registry serve --workers {name.rsplit('-w', 1)[1]}, PostgreSQL): added p50 "
            f"{r[f'{name}_added_p50_over_direct_p50']:.2f}x direct; at {concurrency} "
            f"concurrent {conc[name]['rps']:.0f} req/s = "
            f"{r[f'concurrent_rps_{name}_over_direct']:.2f}x direct (ours, one process on "
            f"SQLite: {xr:.2f}x); server CPU added {r[f'{name}_added_server_cpu_us']:.0f} µs"
        )
    if "ours-a0" in seq:
        a50, k = r["auth_off_added_p50_ms"], r["auth_on_over_off_added_p50"]
        out.append(
            f"authentication off (ours-a0, patched out for the benchmark): added p50 "
            f"{a50:.2f} ms; ours (on) / off = {k:.2f}x (issue 8 goal <= 1.2x: "
            f"{'MET' if k <= 1.2 else 'NOT MET'}); at {concurrency} concurrent "
            f"{r['concurrent_rps_auth_off_over_direct']:.2f}x direct (ours {xr:.2f}x)"
        )
    if "litellm" in seq:
        l50 = seq["litellm"]["p50_ms"] - d["p50_ms"]
        l99 = seq["litellm"]["p99_ms"] - d["p99_ms"]
        out.append(
            f"LiteLLM added p50 {l50:.2f} ms / p99 {l99:.2f} ms one at a time: "
            f"{l50 / a50 if a50 > 0 else float('inf'):.1f}x / "
            f"{l99 / a99 if a99 > 0 else float('inf'):.1f}x ours"
        )
        c50 = conc["litellm"]["p50_ms"] - conc["direct"]["p50_ms"]
        o50 = conc["ours"]["p50_ms"] - conc["direct"]["p50_ms"]
        ratio = conc["ours"]["rps"] / conc["litellm"]["rps"]
        out.append(
            f"at {concurrency} concurrent: ours {conc['ours']['rps']:.0f} req/s vs LiteLLM "
            f"{conc['litellm']['rps']:.0f} req/s = {ratio:.1f}x (goal >= 5x: "
            f"{'MET' if ratio >= 5 else 'NOT MET'}); p50 added ours {o50:.2f} ms, "
            f"LiteLLM {c50:.2f} ms"
        )
    else:
        out.append("LiteLLM comparison: NOT MEASURED (LiteLLM did not run; see above)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sequential", type=int, default=1000, help="one-at-a-time requests per target"
    )
    ap.add_argument(
        "--concurrent", type=int, default=2000, help="concurrent-phase requests per target"
    )
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument(
        "--chunks", type=int, default=5, help="interleaved chunks per phase (more: finer A/B)"
    )
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    ap.add_argument("--litellm-start-timeout", type=float, default=180.0)
    ap.add_argument(
        "--settlement",
        choices=("on", "off", "both"),
        default="on",
        help="LLM_MESH_SETTLEMENT for every mesh (on/off); both: ours and before on, plus "
        "target ours-s0 (this tree, settlement off)",
    )
    ap.add_argument(
        "--no-auth-target",
        action="store_true",
        help="add target ours-a0: this tree with the gateway -> node authentication patched "
        "out for the benchmark (benchmarks/noauth/sitecustomize.py)",
    )
    ap.add_argument(
        "--gateway-workers",
        default="",
        help="comma-separated worker counts: target ours-wN per count, this tree's registry "
        "with --workers N on a fresh PostgreSQL database ($LLM_MESH_TEST_PG_URL's server, "
        "default postgresql://postgres@127.0.0.1:5432/test)",
    )
    ap.add_argument(
        "--baseline-tree",
        default=None,
        help="another checkout: its registry + registered node run as target 'before'",
    )
    args = ap.parse_args()
    print(__doc__)
    print(machine_line())
    print(BASELINE_LINE)
    print(AUTH_LINE)
    if args.settlement == "off":
        os.environ["LLM_MESH_SETTLEMENT"] = "0"
    elif "LLM_MESH_SETTLEMENT" in os.environ:
        del os.environ["LLM_MESH_SETTLEMENT"]  # the default: on
    print(f"settlement: {args.settlement}")
    node_args = ["--sim-ttft-s", "0", "--sim-tokens-per-s", "1000000",
                 "--max-concurrency", "64", "--max-queue", "64"]  # fmt: skip
    with (
        local_mesh(model=MODEL, engine="sim", node_args=node_args) as mesh,
        standalone_node(model=MODEL, engine="sim", node_args=node_args) as direct,
        null_server() as null,
        contextlib.ExitStack() as stack,
    ):
        targets = {"direct": direct, "ours": mesh.registry_url}
        meshes = [mesh]
        if args.baseline_tree:
            with source_tree(args.baseline_tree):
                before = stack.enter_context(
                    local_mesh(model=MODEL, engine="sim", node_args=node_args)
                )
                targets["d-before"] = stack.enter_context(
                    standalone_node(model=MODEL, engine="sim", node_args=node_args)
                )
            targets["before"] = before.registry_url
            meshes.append(before)
            print(f"before: registry + node from {args.baseline_tree}")
        if args.settlement == "both":
            with environ({"LLM_MESH_SETTLEMENT": "0"}):
                off = stack.enter_context(
                    local_mesh(model=MODEL, engine="sim", node_args=node_args)
                )
            targets["ours-s0"] = off.registry_url
            meshes.append(off)
        if args.no_auth_target:
            bare = stack.enter_context(no_auth_mesh(node_args))
            targets["ours-a0"] = bare.registry_url
            meshes.append(bare)
        for n in [int(x) for x in args.gateway_workers.split(",") if x.strip()]:
            admin = os.environ.get("LLM_MESH_TEST_PG_URL") or DEFAULT_PG_URL
            db_url, drop = asyncio.run(pg_database(admin))
            stack.callback(lambda drop=drop: asyncio.run(drop()))
            wm = stack.enter_context(
                local_mesh(model=MODEL, engine="sim", node_args=node_args,
                           database_url=db_url, registry_workers=n)
            )  # fmt: skip
            targets[f"ours-w{n}"] = wm.registry_url
            meshes.append(wm)
            print(f"ours-w{n}: registry serve --workers {n} on PostgreSQL ({db_url})")
            if args.baseline_tree:  # the same from the other checkout: before-wN
                db_url, drop = asyncio.run(pg_database(admin))
                stack.callback(lambda drop=drop: asyncio.run(drop()))
                with source_tree(args.baseline_tree):
                    bm = stack.enter_context(
                        local_mesh(model=MODEL, engine="sim", node_args=node_args,
                                   database_url=db_url, registry_workers=n)
                    )  # fmt: skip
                targets[f"before-w{n}"] = bm.registry_url
                meshes.append(bm)
                print(f"before-w{n}: {args.baseline_tree}'s --workers {n} ({db_url})")
        for m in meshes:
            SERVER_PIDS[m.registry_url] = [p for c in m._children for p in descendants(c.proc.pid)]
            GATEWAY_PIDS[m.registry_url] = [
                p for c in m._children if c.name == "registry" for p in descendants(c.proc.pid)
            ]
            key = make_api_key(m.settings.home, database_url=m.settings.database_url)
            HEADERS_BY_URL[m.registry_url] = {"Authorization": f"Bearer {key}"}
        if args.no_litellm:
            ctx = _nothing("skipped (--no-litellm)")
        else:
            log("starting LiteLLM")
            ctx = litellm_proxy(direct, args.litellm_start_timeout)
        with ctx as (lite_url, note):
            print(f"LiteLLM: {note if lite_url else 'NOT RUN: ' + note}")
            if lite_url:
                targets["litellm"] = lite_url
            targets["null"] = null
            print(
                f"targets: {', '.join(targets)}; sim node (SIMULATED engine), "
                f"{args.sequential} one-at-a-time and {args.concurrent} at {args.concurrency} "
                f"concurrent per target, {args.warmup} warm-up each; load generator: "
                f"httpx {httpx.__version__} Client (one at a time), {load_generator()} "
                f"(concurrent)\n"
            )
            res = bench(targets, args)
    seq, conc = summarize(res["sequential"]), summarize(res["concurrent"])
    print_table("one at a time (latency; +p50/+p99 = added over direct)", seq)
    print_table(f"{args.concurrency} concurrent", conc)
    print("\nresults vs goals:")
    for line in verdicts(seq, conc, args.concurrency):
        print("  " + line)
    print(f"  {BASELINE_LINE}")
    print(f"  {AUTH_LINE}")
    path = write_json(
        "gateway",
        {
            "params": vars(args),
            "litellm": note,
            "sequential": seq,
            "concurrent": conc,
            "ratios_vs_direct": ratios(seq, conc),
            "baseline": BASELINE_LINE,
            "auth": AUTH_LINE,
        },
    )
    print(f"\nJSON: {path}")


@contextmanager
def _nothing(note: str) -> Iterator[tuple[str | None, str]]:
    yield None, note


if __name__ == "__main__":
    main()
