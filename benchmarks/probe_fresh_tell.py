"""How well a node that reads ``core/canary_fresh.py`` tells a fresh canary prompt from a
user's (review36): the cheater's side, measured.

The recogniser a cheating node can run on every prompt it is sent, built from the public
generator alone: make ``--learn`` prompts, keep every word piece they use (identifiers split
at ``_`` and camelCase, lower-cased; digits ignored), and call a prompt "a probe's" when
every word piece of it is one of those. Counted: of ``--probes`` fresh prompts from another
seed, the share called a probe's (the cheater answers those honestly); of text standing in
for users' prompts, the share called a probe's (the cheater would answer those honestly
too: what lying costs it): the public pool's 64 prompts (``core/canary_prompts.PROMPTS``),
windows of 40 to 1,200 characters cut at random from the standard library's Python
sources (code a user pastes) and from this repository's docs (prose). No network, no
model: counts.

    .venv/bin/python benchmarks/probe_fresh_tell.py [--learn 50000] [--probes 20000]
"""

from __future__ import annotations

import argparse
import random
import re
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path

from LLM_Mesh.core.canary_fresh import fresh_prompt
from LLM_Mesh.core.canary_prompts import PROMPTS

_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def pieces(text: str) -> set[str]:
    """The word pieces of ``text``: letters split at case changes, lower-cased."""
    return {p.lower() for p in _PIECE.findall(text)}


def learn(n: int, seed: int) -> set[str]:
    rng = random.Random(seed)
    vocab: set[str] = set()
    for _ in range(n):
        vocab |= pieces(fresh_prompt(rng))
    return vocab


def called_probe(text: str, vocab: set[str]) -> bool:
    got = pieces(text)
    return bool(got) and got <= vocab


def windows(files: Iterable[Path], n: int, rng: random.Random) -> list[str]:
    texts = [t for f in files if len(t := f.read_text(errors="replace")) > 1200]
    out = []
    for _ in range(n):
        t = rng.choice(texts)
        size = rng.randint(40, 1200)
        at = rng.randrange(0, len(t) - size)
        out.append(t[at : at + size])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learn", type=int, default=50_000)
    ap.add_argument("--probes", type=int, default=20_000)
    ap.add_argument("--windows", type=int, default=5_000)
    a = ap.parse_args()
    t0 = time.perf_counter()
    vocab = learn(a.learn, seed=1)
    learnt_s = time.perf_counter() - t0
    rng = random.Random(2)
    fresh = [fresh_prompt(rng) for _ in range(a.probes)]
    stdlib = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    docs = sorted(Path(__file__).resolve().parent.parent.glob("docs/*.md"))
    sets = {
        "fresh prompts (another seed)": fresh,
        "public pool (PROMPTS)": list(PROMPTS),
        "stdlib Python windows": windows(stdlib, a.windows, random.Random(3)),
        "docs prose windows": windows(docs, a.windows, random.Random(4)),
    }
    print(f"vocabulary learnt from {a.learn} fresh prompts: {len(vocab)} word pieces "
          f"({learnt_s:.1f} s)")  # fmt: skip
    for name, texts in sets.items():
        t1 = time.perf_counter()
        hits = sum(called_probe(t, vocab) for t in texts)
        us = (time.perf_counter() - t1) / len(texts) * 1e6
        print(f"{name:32s} {hits:6d} / {len(texts):6d} called a probe's "
              f"({100 * hits / len(texts):.2f} %), {us:.0f} µs a prompt")  # fmt: skip


if __name__ == "__main__":
    main()
