"""What perf38 took off a whole (non-streamed) gateway request, call by call, in one
process: thread CPU, the two forms interleaved round by round.

- ``cap``: the usage audit's cap of the answer (``core/delivered.completion_cap``). Before
  perf38 the account stage counted the answer's bytes again (``answer_bytes``, the send
  stage had counted them a moment before) to make it; now the send stage makes it from its
  own count. Timed: the old form (a second ``answer_bytes`` + ``completion_cap``) against
  the new (``completion_cap`` of the count already made).
- ``encoding``: the three looks at a body's encoding a request makes (its own body in
  ``parse``, the node's answer in ``strict_json.refuse_lone_surrogates``, the keyed body in
  ``priority.keyed_raw``): ``json.detect_encoding`` against ``strict_json.encoding``.

The answer is a sim node's to the benchmarks' one-token chat request (``_common.
SIM_CHAT_BODY``), as ``bench_gateway.py`` sends it: its shape, not a node's run
(**simulated** text). Printed per request: each form's median over the rounds, and the
median of the paired differences (new − old) with its range and in how many rounds the
new form was cheaper.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_hot_calls_perf38.py [--rounds 31]
        [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from _common import SIM_CHAT_BODY, machine_line

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.delivered import answer_bytes, completion_cap

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "mistral-7b",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                 "finish_reason": "length"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    "mesh": {"node_id": "n", "engine": "sim", "simulated": True, "ttft_ms": 0.1,
             "latency_ms": 0.2},
}  # fmt: skip
REQUEST = json.dumps(SIM_CHAT_BODY, separators=(",", ":")).encode()
ANSWER_BYTES = json.dumps(ANSWER, separators=(",", ":")).encode()


def cap_old(calls: int) -> None:
    delivered = answer_bytes(ANSWER, 1, "", False)  # the send stage's (both forms)
    for _ in range(calls):
        completion_cap(delivered, 1, 0)
        completion_cap(answer_bytes(ANSWER, 1, "", False), 1, 0)  # the account stage's


def cap_new(calls: int) -> None:
    delivered = answer_bytes(ANSWER, 1, "", False)
    for _ in range(calls):
        completion_cap(delivered, 1, 0)


def enc_old(calls: int) -> None:
    detect = json.detect_encoding
    for _ in range(calls):
        detect(REQUEST), detect(ANSWER_BYTES), detect(REQUEST)


def enc_new(calls: int) -> None:
    detect = strict_json.encoding
    for _ in range(calls):
        detect(REQUEST), detect(ANSWER_BYTES), detect(REQUEST)


def timed(fn: Callable[[int], None], calls: int) -> float:
    """µs of this thread's CPU a call of ``fn``'s loop body."""
    t0 = time.thread_time()
    fn(calls)
    return (time.thread_time() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    print(machine_line())
    for body in (REQUEST, ANSWER_BYTES):  # the same answer, or the timing means nothing
        assert strict_json.encoding(body) == json.detect_encoding(body) == "utf-8", body
    pairs = {"cap": (cap_old, cap_new), "encoding": (enc_old, enc_new)}
    for name, (old, new) in pairs.items():
        olds: list[float] = []
        news: list[float] = []
        for i in range(args.rounds):  # interleaved, each going first in turn
            if i % 2:
                news.append(timed(new, args.calls))
                olds.append(timed(old, args.calls))
            else:
                olds.append(timed(old, args.calls))
                news.append(timed(new, args.calls))
        diffs = [n - o for n, o in zip(news, olds, strict=True)]
        print(f"{name}: old {statistics.median(olds):.2f} µs, new {statistics.median(news):.2f} "
              f"µs a request; new − old median {statistics.median(diffs):+.2f} µs "
              f"({min(diffs):+.2f} … {max(diffs):+.2f}), lower in "
              f"{sum(d < 0 for d in diffs)} of {len(diffs)} rounds")  # fmt: skip


if __name__ == "__main__":
    main()
