"""Canary prompts made fresh per probe: what they cost the verifier.

A probe's reference is cached per (model file, reference body bytes)
(``registry/canary.CanaryProber.reference``, newest ``max_references`` = 4,096 kept); a
fresh prompt's (``core/canary_fresh.py``) is a miss by design and is not kept. This
draws probes as the prober does (the prompt: fresh on ``--share`` of probes, else from
the public pool; the shape: ``core/canary_shape.choose``), and counts, after a warm-up,
the verifier requests per probe (the cache's misses) for each share; with ``--model``
(a GGUF file) also the prompt tokens per probe's prompt, by the model's own tokenizer
(llama-cpp, vocabulary only), pool against fresh; and the time to make one fresh prompt.
No network, no model run: counts, and one timing.

    .venv/bin/python benchmarks/bench_canary_fresh.py [--probes 20000] [--model FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time

from LLM_Mesh.core.canary_fresh import fresh_prompt
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_shape import DEFAULT_MIX, choose, reference_shape, render

KEEP = 4096  # CanaryProber.max_references


def misses(share: float, probes: int, warm: int, seed: int) -> float:
    """Verifier requests per probe after ``warm`` probes, at fresh ``share``."""
    rng = random.Random(seed)
    cache: dict[str, None] = {}
    asked = 0
    for i in range(warm + probes):
        fresh = share > 0 and rng.random() < share
        prompt = fresh_prompt(rng) if fresh else rng.choice(PROMPTS)
        ref = reference_shape(choose(rng, DEFAULT_MIX, PROMPTS), DEFAULT_MIX)
        key = hashlib.sha256(ref.path.encode() + b"\0" + render(ref, "m", prompt)).hexdigest()
        hit = key in cache
        if not hit and not fresh:
            while len(cache) >= KEEP:
                del cache[next(iter(cache))]
            cache[key] = None
        if i >= warm and not hit:
            asked += 1
    return asked / probes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--probes", type=int, default=20_000)
    ap.add_argument("--warm", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", default=None, help="a GGUF file: count prompt tokens")
    args = ap.parse_args()
    print(f"verifier requests per probe, after {args.warm} probes, over {args.probes}:")
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        m = misses(share, args.probes, args.warm, args.seed)
        print(
            f"  fresh share {share:4.2f}: {m:.3f} (requests per probe, node's + verifier's: {1 + m:.3f})"
        )
    rng = random.Random(args.seed)
    fresh = [fresh_prompt(rng) for _ in range(5_000)]
    start = time.perf_counter()
    for _ in range(20_000):
        fresh_prompt(rng)
    per = (time.perf_counter() - start) / 20_000
    print(f"making one fresh prompt: {per * 1e6:.1f} µs (mean of 20,000)")
    print(f"characters per prompt: pool {statistics.mean(map(len, PROMPTS)):.1f}, "
          f"fresh {statistics.mean(map(len, fresh)):.1f} (max {max(map(len, fresh))})")  # fmt: skip
    if args.model:
        from llama_cpp import Llama

        llm = Llama(model_path=args.model, vocab_only=True, verbose=False)

        def tokens(texts: list[str]) -> list[int]:
            return [len(llm.tokenize(t.encode("utf-8"), add_bos=False)) for t in texts]

        pool, new = tokens(list(PROMPTS)), tokens(fresh)
        print(f"prompt tokens per prompt ({args.model}): pool mean {statistics.mean(pool):.1f}, "
              f"fresh mean {statistics.mean(new):.1f}, p95 {sorted(new)[int(0.95 * len(new))]}, "
              f"max {max(new)}")  # fmt: skip


if __name__ == "__main__":
    main()
