"""Where the gateway's CPU goes per non-streamed request: per-thread CPU and a profile.

Method: one local mesh (registry+gateway and a registered ``sim`` node: SIMULATED, the
same node settings as ``bench_gateway.py``), started with ``gw_profile/`` first on
``PYTHONPATH`` (its ``sitecustomize`` lets SIGUSR1/SIGUSR2 start and stop a ``cProfile``
of the registry's main thread on the thread CPU clock; the package has no such hook).
One ``httpx.Client`` sends ``--requests`` non-streamed chat requests one at a time with
a client API key (the body of ``bench_gateway.py``), after ``--warmup``. Printed: the
registry's CPU per request per thread (``/proc/PID/task/*/schedstat``) over an
unprofiled pass, then the profiled pass's top functions by own time and by cumulative
time, in µs per request (cProfile's overhead inflates small calls: read it for shares,
the unprofiled figure for the total). With ``--baseline-tree DIR`` a second mesh from
that checkout is measured the same way, unprofiled passes interleaved, and each tree's
loop CPU a request in a pass is set against the baseline's in the same round (the paired
median, its range, in how many rounds it was lower). ``--settlement
both`` adds this tree with settlement off (``this-off``; the baseline stays on), and
``--no-settler`` this tree with the settler's rounds put off past the run
(``this-nosettler``: the hot path's two writes without the ledger appends beside them).
Per mesh it also prints the request's wall time (p50, client side), the CPU of each
named thread (the settlement connection's, the request log's aiosqlite, ...) and
settlement's write counters (``gw_profile``'s thread dump).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_cpu.py [--requests 2000]
        [--warmup 200] [--top 40] [--settlement on|off|both] [--no-settler]
        [--variant NAME:VAR=VALUE] [--concurrency 1] [--profile-concurrency 1]
        [--baseline-tree DIR] [--calls-diff N]

``--calls-diff N`` (with ``--baseline-tree``): the profiled calls a request of each tree
against the baseline's, their totals and the ``N`` functions whose calls differ most (each
named by its file from the package's or a library's folder and its name, so the same
function matches in either checkout; perf43).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import re
import signal
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import SIM_CHAT_BODY as BODY
from _common import environ, keyed_headers, machine_line, registry_pid, signal_dump, sim_mesh

HERE = Path(__file__).resolve().parent


def thread_cpu(pid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for t in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[int(t.name)] = int((t / "schedstat").read_text().split()[0]) / 1e9
    return out


def switches(pid: int) -> int:
    """The event loop's thread's context switches so far (voluntary and not)."""
    n = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
            if "ctxt_switches:" in line:
                n += int(line.split()[1])
    return n


def run(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> list[float]:
    """``n`` requests one at a time; each one's wall time (s) as the client saw it."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url + "/v1/chat/completions", json=BODY, headers=headers)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    return out


def run_many(url: str, headers: dict[str, str], n: int, concurrency: int) -> list[float]:
    """``n`` requests from ``concurrency`` clients at once (a thread and a connection
    each), each one at a time; every request's wall time (s)."""
    if concurrency <= 1:
        with httpx.Client(timeout=60.0) as client:
            return run(client, url, headers, n)

    def one(_i: int) -> list[float]:
        with httpx.Client(timeout=60.0) as client:
            return run(client, url, headers, n // concurrency)

    with ThreadPoolExecutor(concurrency) as pool:
        return [w for ws in pool.map(one, range(concurrency)) for w in ws]


def thread_dump(pid: int, tmp: Path) -> dict[str, object]:
    """The registry's thread names and settlement counters (``gw_profile``, SIGUSR2)."""
    return signal_dump(pid, signal.SIGUSR2, tmp / f"{pid}.threads.json", tries=50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=4, help="unprofiled passes, interleaved")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="clients at once in the unprofiled passes (the profile stays one at a time)",
    )
    ap.add_argument(
        "--profile-concurrency",
        type=int,
        default=1,
        help="clients at once in the profiled pass (default one at a time)",
    )
    ap.add_argument("--settlement", choices=("on", "off", "both"), default="on")
    ap.add_argument(
        "--no-settler",
        action="store_true",
        help="also this tree with the settler's rounds put off past the run",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="also this tree with these environment variables (e.g. gw_profile's knobs)",
    )
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument(
        "--calls-diff",
        type=int,
        default=0,
        metavar="N",
        help="with --baseline-tree: the N functions whose profiled calls a request differ "
        "most from the baseline's (the same file and name in either tree), and the totals",
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--py-spy",
        default=None,
        help="a py-spy binary: sample the registry's main thread with it (--nonblocking, "
        "--gil) instead of cProfile; shares of samples, scaled to the unprofiled loop CPU",
    )
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    if args.settlement == "off":
        os.environ["LLM_MESH_SETTLEMENT"] = "0"
    plan: list[tuple[str, str | None, dict[str, str]]] = [("this", None, {})]
    if args.settlement == "both":
        plan.append(("this-off", None, {"LLM_MESH_SETTLEMENT": "0"}))
    if args.no_settler:
        plan.append(("this-nosettler", None, {"LLM_MESH_BENCH_SETTLE_INTERVAL_S": "3600"}))
    for v in args.variant:
        vname, _, assigns = v.partition(":")
        plan.append((vname, None, dict(a.split("=", 1) for a in assigns.split(",") if a)))
    if args.baseline_tree:
        plan.append(("before", args.baseline_tree, {}))
    tmp = Path(tempfile.mkdtemp(prefix="gw-profile-"))
    os.environ["LLM_MESH_BENCH_PROFILE_DIR"] = str(tmp)
    meshes: dict[str, tuple[str, int, dict[str, str]]] = {}
    with contextlib.ExitStack() as stack:
        for name, tree, env in plan:
            with environ(env):
                m = sim_mesh(stack, tree, preload=HERE / "gw_profile")
            meshes[name] = (m.registry_url, registry_pid(m), keyed_headers(m))
        cpu: dict[str, dict[str, float]] = {n: {} for n in meshes}
        per_tid: dict[str, dict[int, float]] = {n: {} for n in meshes}
        walls: dict[str, list[float]] = {n: [] for n in meshes}
        count = dict.fromkeys(meshes, 0)
        rounds: dict[str, list[float]] = {n: [] for n in meshes}  # loop µs a request, a pass
        with httpx.Client(timeout=60.0) as client:
            for url, _, h in meshes.values():
                run(client, url, h, args.warmup)
            counters0 = {n: thread_dump(pid, tmp).get("settlement", {}) for n, (_, pid, _h)
                         in meshes.items()}  # fmt: skip
            per = max(1, args.requests // args.rounds)
            for i in range(args.rounds):
                for name in list(meshes) if i % 2 == 0 else list(reversed(meshes)):
                    url, pid, h = meshes[name]
                    before = thread_cpu(pid)
                    sw0 = switches(pid)
                    walls[name] += run_many(url, h, per, args.concurrency)
                    time.sleep(0.3)  # the settler's round of these requests
                    after = thread_cpu(pid)
                    cpu[name]["switches"] = cpu[name].get("switches", 0) + switches(pid) - sw0
                    rounds[name].append((after.get(pid, 0.0) - before.get(pid, 0.0)) / per * 1e6)
                    for tid, s in after.items():
                        k = "loop" if tid == pid else "threads"
                        d = s - before.get(tid, 0.0)
                        cpu[name][k] = cpu[name].get(k, 0.0) + d
                        per_tid[name][tid] = per_tid[name].get(tid, 0.0) + d
                    count[name] += per
            for name, c in cpu.items():
                n = count[name]
                dump = thread_dump(meshes[name][1], tmp)
                names = dump.get("threads", {})
                assert isinstance(names, dict)
                q = statistics.quantiles(walls[name], n=100)
                print(f"{name}: registry CPU per request (unprofiled, {n} requests): "
                      f"loop {c.get('loop', 0) / n * 1e6:.0f} µs, other threads "
                      f"{c.get('threads', 0) / n * 1e6:.0f} µs; wall p50 / p90 / p99 "
                      f"{q[49] * 1e3:.3f} / {q[89] * 1e3:.3f} / {q[98] * 1e3:.3f} ms; "
                      f"loop context switches {c.get('switches', 0) / n:.1f}")  # fmt: skip
                by_name: dict[str, float] = {}
                for tid, s in per_tid[name].items():
                    label = "loop" if tid == meshes[name][1] else names.get(str(tid), "unnamed")
                    label = label.rsplit("_", 1)[0] if label[-1:].isdigit() else label
                    by_name[label] = by_name.get(label, 0.0) + s
                print("    threads: " + ", ".join(
                    f"{k} {v / n * 1e6:.0f}" for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])
                    if k != "loop"))  # fmt: skip
                c0 = counters0.get(name, {})
                c1 = dump.get("settlement", {})
                if isinstance(c0, dict) and isinstance(c1, dict) and c1:
                    print("    settlement writes over the passes: " + ", ".join(
                        f"{k} {v - c0.get(k, 0)}" for k, v in c1.items()))  # fmt: skip
            if "before" in rounds:  # each pass against the baseline's pass of its round
                for name in meshes:
                    if name == "before":
                        continue
                    diffs = [a - b for a, b in zip(rounds[name], rounds["before"], strict=True)]
                    print(f"{name} − before, loop µs a request, per round: median "
                          f"{statistics.median(diffs):+.1f} ({min(diffs):+.1f} … "
                          f"{max(diffs):+.1f}), lower in {sum(d < 0 for d in diffs)} of "
                          f"{len(diffs)} rounds")  # fmt: skip
            if args.no_profile:
                return
            profiles: dict[str, pstats.Stats] = {}
            for name, (url, pid, h) in meshes.items():
                if args.py_spy:
                    c = cpu[name]
                    spy(args, client, url, pid, h, tmp, name, c.get("loop", 0) / count[name])
                    continue
                os.kill(pid, signal.SIGUSR1)
                time.sleep(0.2)
                run_many(url, h, args.requests, args.profile_concurrency)
                os.kill(pid, signal.SIGUSR2)
                time.sleep(1.0)
                prof = tmp / f"{pid}.prof"
                st = pstats.Stats(str(prof))
                profiles[name] = st
                total = st.total_tt  # type: ignore[attr-defined]
                print(f"\n== {name}: profiled main thread {total / args.requests * 1e6:.0f} µs"
                      f" per request ({prof})")  # fmt: skip
                rows = []
                for func, (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
                    rows.append((tt, ct, nc, func))
                print("-- by own time: µs/req own, cum, calls/req, function")
                for tt, ct, nc, func in sorted(rows, reverse=True)[: args.top]:
                    print(f"{tt / args.requests * 1e6:8.1f} {ct / args.requests * 1e6:8.1f} "
                          f"{nc / args.requests:6.1f}  {pstats.func_std_string(func)}")  # fmt: skip
                print("-- by cumulative time")
                for tt, ct, nc, func in sorted(rows, key=lambda r: -r[1])[: args.top * 2]:
                    print(f"{tt / args.requests * 1e6:8.1f} {ct / args.requests * 1e6:8.1f} "
                          f"{nc / args.requests:6.1f}  {pstats.func_std_string(func)}")  # fmt: skip

            if args.calls_diff and "before" in profiles:
                for name in profiles:
                    if name != "before":
                        calls_diff(profiles[name], profiles["before"], args.requests,
                                   args.calls_diff, name)  # fmt: skip


def _where(func: tuple[str, int, str]) -> str:
    """A profiled function named the same in either tree: its file from the package's or a
    library's top folder (no checkout's path, no line number) and its name (no address)."""
    path, _line, fname = func
    m = re.search(r"/(LLM_Mesh|site-packages|python3\.\d+)/(.*)", path)
    if m:
        path = f"{m.group(1)}/{m.group(2)}"
    return f"{path}:{re.sub(r' at 0x[0-9a-f]+', '', fname)}"


def _calls(st: pstats.Stats) -> dict[str, tuple[int, float]]:
    """Each function's (calls, own seconds) in a profile, keyed by :func:`_where`."""
    out: dict[str, tuple[int, float]] = {}
    for func, (_cc, nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        key = _where(func)
        n0, t0 = out.get(key, (0, 0.0))
        out[key] = (n0 + nc, t0 + tt)
    return out


def calls_diff(st: pstats.Stats, base: pstats.Stats, n: int, top: int, name: str) -> None:
    """The profiled calls a request of ``st`` against ``base`` (the same ``n`` requests):
    the totals, then the ``top`` functions whose calls a request differ most (own µs a
    request beside them: cProfile's, for shares only)."""
    a, b = _calls(st), _calls(base)
    ta, tb = sum(c for c, _ in a.values()), sum(c for c, _ in b.values())
    print(f"\n== calls a request, {name} / before: {ta / n:.1f} / {tb / n:.1f} "
          f"({(ta - tb) / n:+.1f}); functions called {len(a)} / {len(b)}")  # fmt: skip
    rows = []
    for key in a.keys() | b.keys():
        (ca, oa), (cb, ob) = a.get(key, (0, 0.0)), b.get(key, (0, 0.0))
        if abs(ca - cb) / n >= 0.05:
            rows.append(((ca - cb) / n, ca / n, cb / n, oa / n * 1e6, ob / n * 1e6, key))
    print(f"-- calls a request: diff, {name}, before; own µs a request {name}, before")
    for d, ca_, cb_, oa_, ob_, key in sorted(rows, key=lambda r: -abs(r[0]))[:top]:
        print(f"{d:+7.2f} {ca_:7.2f} {cb_:7.2f} {oa_:7.1f} {ob_:7.1f}  {key}")


def spy(
    args: argparse.Namespace,
    client: httpx.Client,
    url: str,
    pid: int,
    h: dict[str, str],
    tmp: Path,
    name: str,
    loop_s: float,
) -> None:
    """Sample the registry under ``--requests`` requests with py-spy (raw stacks)."""
    out = tmp / f"{pid}.raw"
    proc = subprocess.Popen([args.py_spy, "record", "-p", str(pid), "-r", "1000", "-f", "raw",
                             "-o", str(out), "--nonblocking", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.5)
    run_many(url, h, args.requests, args.profile_concurrency)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        n = int(n_text)
        frames = stack.split(";")
        total += n
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    us = loop_s * 1e6  # the unprofiled loop CPU per request: what the samples share
    print(f"\n== {name}: py-spy, {total} samples (GIL held); scaled to {us:.0f} µs/request")
    print("-- by own samples: µs/req own, incl, function")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n / total * us:8.1f} {incl[f] / total * us:8.1f}  {f}")
    print("-- by inclusive samples")
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[: args.top * 2]:
        print(f"{own.get(f, 0) / total * us:8.1f} {n / total * us:8.1f}  {f}")


if __name__ == "__main__":
    main()
