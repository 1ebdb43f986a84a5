"""The gateway's CPU per streamed chunk, in process: a node's SSE bytes to the client's bytes.

Method: for each checkout given (this one first; ``--baseline-tree DIR`` another), a child
process (``PYTHONPATH`` = that checkout) replays one recorded-shape node stream, read by
read (one SSE event a read, as a node's tokens arrive), through the gateway's own stream
stages: the framer (``core/sse_frame.SseFramer``), the part reader
(``registry/stream_part.PartReader``: the strict parse, the checks, the floor's count, the
token bound, the data lines kept for the receipt), the send stage's read loop
(``registry/send_stream.NodeStream.events``: the floor's clock) and the relay
(``registry/relay.SseRelay.events``: the client's bytes, its final chunk's ``mesh`` from a
stand-in ``finalize``), driven by one event loop (uvloop when installed, as the gateway).
The node's bytes are those a ``llama-cpp`` node writes (``node/responses.py``'s shapes:
``id``, ``object``, ``created``, ``model``, one choice with ``index``, ``text`` or
``delta``, ``finish_reason``, ``logprobs``; the final chunk with ``usage`` and a signed
receipt's ``mesh``), of gemma-3-270m's answer to ``bench_throughput.py``'s prompt. Legs:
``read`` (framer + part reader only, no event loop), ``stream`` (the whole chain), for a
completion (``bench_throughput.py``'s request: no ``include_usage``, so the relay holds the
finish chunk) and a chat stream, ``--tokens`` content chunks each (the request's
``max_tokens``). Thread CPU (``time.thread_time_ns``) of ``--streams`` streams a round,
per content chunk (the stream's whole work, its final chunk and receipt text included,
over its tokens); ``--rounds`` rounds, the checkouts' order alternating; printed: the
median and lowest round per checkout and leg, and each round's ratio this / baseline
(median). No socket, no node, nothing simulated: the same bytes for every checkout, and
every checkout's client bytes checked equal. A tight loop keeps code and data in the
CPU's caches: read the figures as a comparison, not as the gateway's cost in service.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_stream_chunk.py [--baseline-tree DIR]
        [--tokens 32,256] [--streams 200] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import machine_line

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, hashlib, json, sys, time
from types import SimpleNamespace
from LLM_Mesh.core.sse_frame import SseFramer
from LLM_Mesh.core.stream_guard import SharedTime, StreamFloor
from LLM_Mesh.registry.job import Tally
from LLM_Mesh.registry.relay import SseRelay
from LLM_Mesh.registry.send_stream import NodeStream
from LLM_Mesh.registry.stream_part import PartReader

try:
    import uvloop
    new_loop = uvloop.new_event_loop
except ImportError:  # pragma: no cover - the gateway's loop when installed
    new_loop = asyncio.new_event_loop

spec = json.loads(sys.argv[1])
MODEL = "gemma-3-270m"
# gemma-3-270m's greedy answer to "def fibonacci(n):", as its tokens (the text repeats)
WORDS = ["\n", "  ", "\"\"\"", "\n", "  ", "Calculates", " the", " nth", " Fibonacci",
         " number", ".", "\n\n", "  ", "Args", ":", "\n", "    ", "n", ":", " The", " index",
         " of", " the", " desired", " Fibonacci", " number", " (", "non", "-", "negative",
         " integer", ").", "\n\n", "  ", "Returns", ":", "\n", "    ", "The", " nth",
         " Fibonacci", " number", ".", "\n", "  ", "\"\"\"", "\n", "  ", "if", " n", " <=",
         " ", "1", ":", "\n", "    ", "return", " n", "\n", "  ", "else", ":", "\n"]


def dump(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def node_reads(kind, tokens):
    # one read per event, as a node's tokens come; the finish, final chunk and [DONE]
    # in one read (node/app.py writes them together)
    chat = kind == "chat"
    ids = {"id": ("chatcmpl-" if chat else "cmpl-") + "9f2c41d0a7e64b1f8c03d5e6a7b8c9d0",
           "object": "chat.completion.chunk" if chat else "text_completion",
           "created": 1764940000, "model": MODEL}

    def chunk(text, finish=None, role=False):
        if chat:
            delta = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return {**ids, "choices": [choice]}

    reads = [dump(chunk("", role=True))] if chat else []
    text = ""
    for i in range(tokens):
        word = WORDS[i % len(WORDS)]
        text += word
        reads.append(dump(chunk(word)))
    receipt = {"v": 1, "node_id": "node-hkpnyukvystgni5fgwqe6g2voz", "model": MODEL,
               "request_id": "req-9d1ffe0909a14a0a73a29091f98f646d", "prompt_tokens": 6,
               "completion_tokens": tokens,
               "output_sha256": hashlib.sha256(text.encode()).hexdigest(),
               "body_sha256": hashlib.sha256(b"body").hexdigest(), "ts": 1764940000.123,
               "sig": "Q" * 86}
    mesh = {"node_id": receipt["node_id"], "engine": "llama-cpp", "simulated": False,
            "tokens_per_s": 61.4, "receipt": receipt}
    usage = {"prompt_tokens": 6, "completion_tokens": tokens, "total_tokens": 6 + tokens}
    reads.append(dump(chunk(None if chat else "", finish="length"))
                 + dump({**ids, "choices": [], "usage": usage, "mesh": mesh})
                 + b"data: [DONE]\n\n")
    return reads


class Resp:
    status_code = 200
    headers = {}  # the node's answer head: no X-Mesh-Prompt-Tokens (money34 reads it)

    def __init__(self, reads):
        self.reads = reads

    async def _raw(self):
        for r in self.reads:
            yield r

    def aiter_raw(self):
        return self._raw()

    async def aclose(self):
        return None

    async def done_reading(self):
        return None


class Exchange:
    def __init__(self, tokens):
        self.tally = Tally()
        self.tally.node_id = "node-hkpnyukvystgni5fgwqe6g2voz"
        self.att = None
        self.job = SimpleNamespace(token_limit=tokens, max_tokens=tokens, choices=1,
                                   stop_bytes=0, model=MODEL, echo=False, text_only=False,
                                   forwarded_id="req-9d1ffe0909a14a0a73a29091f98f646d")
        self.rt = SimpleNamespace(clock=time.monotonic, stream_floor=StreamFloor(),
                                  signer=SimpleNamespace(registry_id="reg-bench"), node_keys=None,
                                  metrics=None)
        self.routing = SimpleNamespace(shares=SharedTime())

    def first_token(self):
        return None

    def finish(self, *a, **k):
        return None


def finalize(obj, _continued):
    obj["mesh"] = {"node_id": "node-hkpnyukvystgni5fgwqe6g2voz", "receipt": {"v": 1}}


def read_leg(reads, tokens, streams):
    t = time.thread_time_ns()
    for _ in range(streams):
        reader = PartReader(Exchange(tokens))
        reader._part()
        framer = SseFramer()
        for got in reads:
            reader._events(framer.feed(got))
    return time.thread_time_ns() - t


async def one_stream(reads, tokens, usage_chunk):
    ns = NodeStream(Exchange(tokens))
    ns.resp = Resp(reads)
    ns._part()
    relay = SseRelay(ns.events(), finalize, usage_chunk=usage_chunk)
    out = [b async for b in relay.events()]
    tally = ns.ex.tally
    if tally.outcome != "ok" or tally.completion_tokens != tokens or not out[-1].endswith(
        b"data: [DONE]\n\n"
    ):  # the answer's normal end, its count priced: else this timed something else
        raise SystemExit(f"the stream did not end as an answer: {tally.outcome} {out[-1]!r}")
    return out


async def stream_leg(reads, tokens, streams, usage_chunk):
    t = time.thread_time_ns()
    for _ in range(streams):
        await one_stream(reads, tokens, usage_chunk)
    return time.thread_time_ns() - t


loop = new_loop()
result = {}
for kind in ("completion", "chat"):
    for tokens in spec["tokens"]:
        reads = node_reads(kind, tokens)
        usage_chunk = kind == "chat"  # a completion as bench_throughput asks it: no include_usage
        out = loop.run_until_complete(one_stream(reads, tokens, usage_chunk))
        result[f"bytes {kind} {tokens}"] = hashlib.sha256(b"".join(out)).hexdigest()
        read_leg(reads, tokens, 5)  # warm
        n = spec["streams"] * tokens
        result[f"read {kind} {tokens}"] = read_leg(reads, tokens, spec["streams"]) / n / 1e3
        ns = loop.run_until_complete(stream_leg(reads, tokens, spec["streams"], usage_chunk))
        result[f"stream {kind} {tokens}"] = ns / n / 1e3
loop.close()
print(json.dumps(result))
"""


def one(tree: str, spec: dict[str, object]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=env, check=True, capture_output=True, text=True, cwd=tree,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--tokens", default="32,256")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    spec = {"tokens": [int(t) for t in args.tokens.split(",")], "streams": args.streams}
    trees = [str(ROOT)] + ([args.baseline_tree] if args.baseline_tree else [])
    print((__doc__ or "").splitlines()[0])
    print(machine_line())
    runs: dict[str, list[dict[str, object]]] = {t: [] for t in trees}
    for i in range(args.rounds):
        for tree in trees if i % 2 == 0 else list(reversed(trees)):
            runs[tree].append(one(tree, spec))
    print(machine_line())
    first = runs[trees[0]][0]
    keys = [k for k in first if not k.startswith("bytes ")]
    for key in (k for k in first if k.startswith("bytes ")):
        same = {runs[t][0][key] for t in trees}
        print(f"client bytes, {key[6:]}: " + ("same in every checkout" if len(same) == 1
                                              else f"DIFFER: {sorted(same)}"))  # fmt: skip
    for tree in trees:
        cells = []
        for key in keys:
            values = [float(str(r[key])) for r in runs[tree]]
            cells.append(f"{key} {statistics.median(values):.3f} (lowest {min(values):.3f})")
        print(f"{tree}: µs a content chunk, median of {args.rounds} rounds:")
        for cell in cells:
            print("   " + cell)
    if len(trees) == 2:
        print(f"this / baseline, median of the rounds' ratios ({args.rounds} rounds):")
        for key in keys:
            ratios = [float(str(a[key])) / float(str(b[key]))
                      for a, b in zip(runs[trees[0]], runs[trees[1]], strict=True)]  # fmt: skip
            print(f"   {key}: {statistics.median(ratios):.3f} "
                  f"(rounds {min(ratios):.3f} to {max(ratios):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
