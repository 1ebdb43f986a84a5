"""The gateway's memory (RSS) under sustained light load, sampled over --minutes.

Method: one local mesh (``llm-mesh registry serve`` = registry + gateway, and one
registered ``sim`` node, separate processes on loopback, throw-away LLM_MESH_HOME).
The sim engine is SIMULATED: it sleeps ``--sim-ttft-s`` then streams ``--max-tokens``
tokens at ``--sim-tokens-per-s``; no model. The gateway runs as shipped: the default
store (SQLite in LLM_MESH_HOME), settlement on (every request reserved and charged),
metrics and request log lines as the defaults have them. The client is what real
traffic is on a public gateway: an API key made for the run whose user is granted a
balance that never runs out (``_common.make_api_key``); every request carries a fresh
``X-Request-Id`` (as ``LLM_Mesh.client`` sends), a prompt of its own, and every
``--stream-every``-th one is streamed (SSE read to ``[DONE]``).

Load: ``--concurrency`` clients (asyncio + aiohttp, one keep-alive session per target),
each sending one request at a time and pacing itself so that all together send about
``--rate`` requests/s (light on purpose: the box is shared; this measures memory, not
throughput). The achieved rate is printed.

Sampling: every ``--interval`` s the resident set size of the gateway process (with its
children, if any) is read (psutil when installed, else ``/proc/PID/status`` VmRSS;
MB = 10^6 bytes), beside the requests served, the errors and the load average.
Reported: RSS at 1, 5, 10, 20 and 30 min, the maximum, and the least-squares growth
slope from minute 5 on (MB per 10 min; half the run for runs of 5 min or less).
Goal (issue 11): <= 150 MB and flat.

LiteLLM: when its ``litellm`` command is found (this interpreter's bin, ``--litellm-venv
DIR``'s bin, or PATH), its proxy (``--num_workers 1``, started as bench_gateway.py does)
runs in the same run with the same load, in front of a second sim node with the same
settings started with ``register = false`` (a registered node answers only its own
gateway), and its RSS (process tree) is sampled the same way. Otherwise it says so.

    .venv/bin/python benchmarks/bench_rss.py [--minutes 30] [--rate 100] [--no-litellm]
        [--litellm-venv DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import local_mesh, log, machine_line, make_api_key, standalone_node, write_json
from bench_gateway import LITELLM_PIDS, MASTER_KEY, MODEL, litellm_proxy
from rss_stats import MARKS_MIN, summarize, table

try:
    import psutil  # type: ignore[import-untyped]
except ImportError:  # not a dependency: /proc is enough on Linux
    psutil = None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and all its descendants, bytes (0 once gone)."""
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            procs = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for q in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += int(q.memory_info().rss)
        return total
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
        todo += _children(p)
    return total


def rss_kinds_mb(pid: int) -> dict[str, float]:
    """The gateway process's own RSS by kind (``/proc/PID/status``: anonymous memory, file
    pages mapped, shared memory), MB: growth in ``anon`` is the heap, in ``file`` mapped
    files (a database mapped into memory would show there)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            for key, name in (("RssAnon:", "anon"), ("RssFile:", "file"), ("RssShmem:", "shmem")):
                if line.startswith(key):
                    out[name] = round(int(line.split()[1]) * 1024 / 1e6, 2)
    return out


@dataclass
class Target:
    name: str
    url: str
    pid: int
    headers: dict[str, str]
    request_ids: bool  # send X-Request-Id (our client does; LiteLLM ignores it)
    ok: int = 0
    errors: int = 0
    first_error: str = ""
    samples: list[tuple[float, float]] = field(default_factory=list)
    served_at: list[int] = field(default_factory=list)


def _body(n: int, stream: bool, max_tokens: int) -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Say hi to visitor number {n}"}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
    ).encode()


async def drive(targets: list[Target], args: Any) -> tuple[float, list[dict[str, Any]]]:
    """Load every target at once for ``args.minutes``; sample RSS every ``args.interval``."""
    import aiohttp

    clock = time.monotonic
    duration = args.minutes * 60.0
    period = args.concurrency / args.rate  # each client's interval between requests
    rows: list[dict[str, Any]] = []
    t0 = clock()
    end = t0 + duration

    async def worker(session: aiohttp.ClientSession, tg: Target, i: int) -> None:
        endpoint = tg.url + "/v1/chat/completions"
        next_t = t0 + i * period / args.concurrency  # staggered
        n = i
        while True:
            now = clock()
            if now >= end:
                return
            if next_t > now:
                await asyncio.sleep(next_t - now)
            elif now - next_t > period:  # fell behind: no burst to catch up
                next_t = now
            next_t += period
            n += args.concurrency
            stream = args.stream_every > 0 and n % args.stream_every == 0
            headers = {**tg.headers, "Content-Type": "application/json"}
            if tg.request_ids:
                headers["X-Request-Id"] = uuid.uuid4().hex
            try:
                async with session.post(
                    endpoint, data=_body(n, stream, args.max_tokens), headers=headers
                ) as r:
                    data = await r.read()
                    good = r.status == 200 and (
                        b"[DONE]" in data if stream else b'"choices"' in data
                    )
            except Exception as exc:  # any transport failure is an error
                good, data = False, repr(exc).encode()
            if good:
                tg.ok += 1
            else:
                tg.errors += 1
                if not tg.first_error:
                    tg.first_error = data[:300].decode(errors="replace")

    async def sampler() -> None:
        k = 0
        while True:
            t = clock() - t0
            la = os.getloadavg()[0]
            row: dict[str, Any] = {"t_s": round(t, 1), "load1": round(la, 2)}
            for tg in targets:
                mb = rss_bytes(tg.pid) / 1e6
                tg.samples.append((t, mb))
                tg.served_at.append(tg.ok)
                row[tg.name] = {
                    "rss_mb": round(mb, 2), "ok": tg.ok, "errors": tg.errors,
                    "kinds_mb": rss_kinds_mb(tg.pid),
                }  # fmt: skip
            rows.append(row)
            if k % max(1, round(60 / args.interval)) == 0:
                log(
                    f"  {t / 60:5.1f} min  load {la:.2f}  "
                    + "  ".join(
                        f"{tg.name} {tg.samples[-1][1]:.1f} MB "
                        f"({' '.join(f'{k} {v:.1f}' for k, v in rss_kinds_mb(tg.pid).items())}) "
                        f"{tg.ok} ok {tg.errors} err"
                        for tg in targets
                    )
                )
            k += 1
            nxt = t0 + k * args.interval
            if nxt > end + 0.5:
                return
            await asyncio.sleep(max(0.0, nxt - clock()))

    conns = [aiohttp.TCPConnector(limit=args.concurrency) for _ in targets]
    sessions = [
        aiohttp.ClientSession(connector=c, timeout=aiohttp.ClientTimeout(total=60.0)) for c in conns
    ]
    try:
        await asyncio.gather(
            sampler(),
            *(
                worker(s, tg, i)
                for s, tg in zip(sessions, targets, strict=True)
                for i in range(args.concurrency)
            ),
        )
    finally:
        for s in sessions:
            await s.close()
    return clock() - t0, rows


@contextlib.contextmanager
def _maybe_litellm(args: Any, node_args: list[str]) -> Iterator[tuple[Target | None, str]]:
    if args.no_litellm:
        yield None, "skipped (--no-litellm)"
        return
    if args.litellm_venv:
        os.environ["PATH"] = f"{Path(args.litellm_venv).resolve() / 'bin'}:{os.environ['PATH']}"
    with (
        standalone_node(model=MODEL, engine="sim", node_args=node_args) as direct,
        litellm_proxy(direct, args.litellm_start_timeout) as (url, note),
    ):
        if url is None:
            yield None, note
            return
        version = _litellm_version(args.litellm_venv) or note
        hdr = {"Authorization": f"Bearer {MASTER_KEY}"}
        yield Target("litellm", url, LITELLM_PIDS[url], hdr, request_ids=False), version


def _litellm_version(venv: str | None) -> str | None:
    if not venv:
        return None
    for d in Path(venv).glob("lib/python*/site-packages/litellm-*.dist-info"):
        return "litellm " + d.name.removeprefix("litellm-").removesuffix(".dist-info")
    return None


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the loaded run")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--concurrency", type=int, default=10, help="clients per target")
    ap.add_argument("--rate", type=float, default=100.0, help="requests/s per target, all clients")
    ap.add_argument("--sim-ttft-s", type=float, default=0.02)
    ap.add_argument("--sim-tokens-per-s", type=float, default=1000.0)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--stream-every", type=int, default=2, help="every Nth request streamed")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    ap.add_argument("--litellm-venv", default=None, help="a venv whose bin/ has `litellm`")
    ap.add_argument("--litellm-start-timeout", type=float, default=180.0)
    args = ap.parse_args()
    os.environ.pop("LLM_MESH_SETTLEMENT", None)  # as shipped: on
    print(__doc__)
    print(machine_line())
    node_args = ["--sim-ttft-s", str(args.sim_ttft_s), "--sim-tokens-per-s",
                 str(args.sim_tokens_per_s), "--max-concurrency", "32", "--max-queue", "64"]  # fmt: skip
    la0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with local_mesh(model=MODEL, engine="sim", node_args=node_args) as mesh:
        key = make_api_key(mesh.settings.home)
        gw_pid = mesh._children[0].proc.pid  # the registry + gateway process
        ours = Target("ours", mesh.registry_url, gw_pid, {"Authorization": f"Bearer {key}"}, True)
        with _maybe_litellm(args, node_args) as (lite, note):
            print(f"LiteLLM: {note if lite else 'NOT RUN: ' + note}")
            targets = [ours] + ([lite] if lite else [])
            idle = {tg.name: round(rss_bytes(tg.pid) / 1e6, 2) for tg in targets}
            print(
                f"sim node (SIMULATED engine): ttft {args.sim_ttft_s} s, "
                f"{args.sim_tokens_per_s:g} tokens/s, max_tokens {args.max_tokens}; "
                f"{args.concurrency} clients per target, paced to {args.rate:g} req/s per "
                f"target, every {args.stream_every}-th request streamed; {args.minutes:g} min, "
                f"RSS every {args.interval:g} s; gateway: SQLite store, settlement on, "
                f"client API key with a granted balance; idle RSS before load (MB): {idle}\n"
            )
            duration, rows = _run(drive(targets, args))
    ended = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    loads = [r["load1"] for r in rows]
    result: dict[str, dict[str, Any]] = {}
    for tg in targets:
        s = summarize(tg.samples, args.minutes * 60.0, args.interval)
        s.update(
            requests=tg.ok,
            errors=tg.errors,
            rps=tg.ok / duration,
            idle_mb=idle[tg.name],
            first_error=tg.first_error,
        )
        result[tg.name] = s
    print(f"\nUTC {started} .. {ended}; load average (1 min) {min(loads):.2f} .. {max(loads):.2f}")
    print(
        f"RSS in MB (10^6 bytes) at each mark; slope* = least-squares growth from "
        f"{result['ours']['slope_from_s'] / 60:g} min on, MB per 10 min; req/s achieved\n"
    )
    for line in table(result, MARKS_MIN):
        print(line)
    print("\nresults vs goals:")
    o = result["ours"]
    slope = o["slope_mb_per_10min"]
    print(
        f"  ours max RSS {o['max_mb']:.1f} MB <= 150 MB: {'MET' if o['max_mb'] <= 150 else 'NOT MET'}"
    )
    print(
        f"  ours growth {slope:+.2f} MB / 10 min after {o['slope_from_s'] / 60:g} min "
        f"(flat = |slope| < 1 MB / 10 min: {'MET' if abs(slope) < 1.0 else 'NOT MET'})"
    )
    if "litellm" in result:
        li = result["litellm"]
        print(
            f"  LiteLLM max RSS {li['max_mb']:.1f} MB ({li['max_mb'] / o['max_mb']:.1f}x ours), "
            f"growth {li['slope_mb_per_10min']:+.2f} MB / 10 min"
        )
    else:
        print(f"  LiteLLM: NOT MEASURED ({note})")
    for tg in targets:
        if tg.first_error:
            print(f"  {tg.name} first error: {tg.first_error}")
    path = write_json(
        "rss",
        {
            "params": vars(args),
            "started_utc": started,
            "ended_utc": ended,
            "load1_before": round(la0[0], 2),
            "load1_range": [min(loads), max(loads)],
            "litellm": note,
            "summary": result,
            "samples": rows,
        },
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
