"""The natural spread of honest nodes' token counts as a share of the gateway's caps: what
``core/usage_audit.py``'s factor must stay above.

Runs a node (``NodeService`` and its app, no sockets) on the real gemma-3-270m llama.cpp
engine (``--engine llama-cpp``, the default) or the sim engine (``--engine sim``) and asks
it, completion and chat, varied prompts of several kinds of text (English prose, code,
French, German, Russian, Chinese, Japanese, Arabic, digits and numbers, short chat turns).
For each kind it prints the honest node's share of the gateway's caps, as the audit sums
it: Σ completion_tokens ÷ Σ (UTF-8 bytes of the text + 16) (``core/delivered.py``) and
Σ prompt_tokens ÷ Σ (prompt bytes + 8 a message + 16) (``pricing.estimate_prompt_tokens``),
and tokens a byte for comparison; then the spread (largest ÷ smallest share) across kinds
and what a node stating a token a byte would show (its every count at the cap: 1.0).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_usage_audit.py
        [--engine llama-cpp|sim|tokenizer] [--max-tokens 64]

``--engine tokenizer``: no generation, the real model's vocabulary only, on a passage of each
kind (as an answer in that language would come back; the tiny model mostly answers other
languages' prompts in English, so the generating run under-weighs them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.delivered import SLACK_PER_CHOICE
from LLM_Mesh.core.pricing import estimate_prompt_tokens
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.base import Engine
from LLM_Mesh.node.service import NodeService

MODEL = "gemma-3-270m"

KINDS: dict[str, list[str]] = {
    "english": [
        "The history of the Roman Empire begins with",
        "Write a short story about a lighthouse keeper who",
        "Explain why the sky is blue in simple terms.",
        "The three most important lessons I learned in college were",
    ],
    "code": [
        "def fibonacci(n):",
        "import numpy as np\n\ndef normalize(matrix):",
        "SELECT name, COUNT(*) FROM orders WHERE",
        "function debounce(fn, ms) {",
    ],
    "french": [
        "Il était une fois, dans un petit village de Provence,",
        "Expliquez pourquoi la Révolution française a commencé en 1789.",
    ],
    "german": [
        "Die Geschichte der deutschen Eisenbahn beginnt im Jahr",
        "Erklären Sie den Unterschied zwischen Wetter und Klima.",
    ],
    "russian": [
        "В начале двадцатого века в Москве",
        "Объясните, почему небо голубое.",
    ],
    "chinese": [
        "从前有一个小村庄，村里住着一位老人，",
        "请解释为什么天空是蓝色的。",
    ],
    "japanese": [
        "昔々、ある山奥の村に、",
        "日本の四季について説明してください。",
    ],
    "arabic": [
        "كان يا ما كان في قديم الزمان",
        "اشرح لماذا السماء زرقاء.",
    ],
    "digits": [
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
        "The first 50 digits of pi are 3.14159265358979323846",
        "Order 48213 shipped 2025-03-14; order 48214 shipped",
    ],
    "short": ["Hi", "Yes?", "Thanks!", "OK"],
}


# answers as they may come back (an honest node's text), for ``--engine tokenizer``
PASSAGES: dict[str, str] = {
    "english": "The Roman Empire was one of the largest empires in history. It began when "
    "Augustus became the first emperor in 27 BC and lasted in the west until 476 AD. Its "
    "roads, laws and language shaped Europe for centuries.",
    "code": "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, "
    "a + b\n    return a\n\nprint([fibonacci(i) for i in range(10)])",
    "french": "L'Empire romain fut l'un des plus grands empires de l'histoire. Il commença "
    "lorsqu'Auguste devint le premier empereur en 27 av. J.-C. et dura en Occident jusqu'en 476.",
    "german": "Das Römische Reich war eines der größten Reiche der Geschichte. Es begann, als "
    "Augustus im Jahr 27 v. Chr. der erste Kaiser wurde, und bestand im Westen bis 476.",
    "russian": "Римская империя была одной из крупнейших империй в истории. Она началась, "
    "когда Август стал первым императором в 27 году до нашей эры.",
    "chinese": "罗马帝国是历史上最大的帝国之一。它始于公元前27年奥古斯都成为第一位皇帝，西部一直延续到公元476年。",
    "japanese": "ローマ帝国は歴史上最大の帝国の一つでした。紀元前27年にアウグストゥスが初代皇帝となったときに始まりました。",
    "arabic": "كانت الإمبراطورية الرومانية واحدة من أكبر الإمبراطوريات في التاريخ. بدأت عندما "
    "أصبح أغسطس أول إمبراطور.",
    "hindi": "रोमन साम्राज्य इतिहास के सबसे बड़े साम्राज्यों में से एक था। यह तब शुरू हुआ जब "
    "ऑगस्टस पहला सम्राट बना।",
    "emoji": "Great job! 🎉🎉 See you soon 👋😀 Have fun 🚀✨",
    "numbers": "Order 48213 shipped 2025-03-14; order 48214 shipped 2025-03-15; order 48215 "
    "shipped 2025-03-17.",
    "digits": "3.14159265358979323846264338327950288419716939937510 "
    "58209749445923078164062862089986280348253421170679",
}


def tokenizer_only() -> None:
    """The real gemma-3-270m's tokenizer (its GGUF's vocabulary) on :data:`PASSAGES`: an
    honest node's completion count of each as an answer (its tokens + an end token) as a
    share of the gateway's cap (its bytes + 16)."""
    import llama_cpp

    from LLM_Mesh.node.model_files import resolve_model

    path = resolve_model(MODEL, Settings(home=Path("/nonexistent-llm-mesh-home")))
    vocab = llama_cpp.Llama(model_path=str(path.path), vocab_only=True, verbose=False)
    print("engine tokenizer (gemma-3-270m's vocabulary), one passage a kind")
    print(f"  {'kind':10} {'bytes':>5} {'tokens':>6} {'tok/byte':>8} {'compl/cap':>9}")
    shares = {}
    for kind, text in PASSAGES.items():
        n, nbytes = len(vocab.tokenize(text.encode(), add_bos=False)), len(text.encode())
        shares[kind] = (n + 1) / (nbytes + SLACK_PER_CHOICE)
        print(f"  {kind:10} {nbytes:5d} {n:6d} {n / nbytes:8.3f} {shares[kind]:9.3f}")
    prose = {k: v for k, v in shares.items() if k not in ("numbers", "digits")}
    print(f"  spread across prose and code kinds: {max(prose.values()) / min(prose.values()):.2f}")


def engine_for(kind: str) -> Engine:
    if kind == "sim":
        from LLM_Mesh.node.engines.sim import SimEngine

        async def no_sleep(_s: float) -> None:
            await asyncio.sleep(0)

        return SimEngine([MODEL], ttft_s=0.0, tokens_per_s=1000.0, sleep=no_sleep)
    from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
    from LLM_Mesh.node.model_files import resolve_model

    model = resolve_model(MODEL, Settings(home=Path("/nonexistent-llm-mesh-home")))
    return LlamaCppEngine([model], n_ctx=2048)


def _text(body: dict[str, Any]) -> str:
    out = []
    for ch in body.get("choices") or []:
        out.append(ch.get("text") or (ch.get("message") or {}).get("content") or "")
    return "".join(out)


async def run(engine_kind: str, max_tokens: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), registry_url="http://registry.test")
        config = NodeConfig(
            engine="sim" if engine_kind == "sim" else "llama-cpp", models=[MODEL], register=False
        )
        svc = NodeService(
            config, settings, engine=engine_for(engine_kind),
            hardware=Hardware(cpu_count=2, memory_bytes=8 << 30),
        )  # fmt: skip
        await svc.start()
        transport = httpx.ASGITransport(app=create_node_app(svc), client=("127.0.0.1", 4321))
        rows: dict[str, list[int]] = {}
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8801", timeout=600
            ) as c:
                for kind, prompts in KINDS.items():
                    sums = [0, 0, 0, 0, 0]  # completion, its cap, prompt, its cap, text bytes
                    for prompt in prompts:
                        for chat in (False, True):
                            body: dict[str, Any] = {"model": MODEL, "max_tokens": max_tokens,
                                                    "temperature": 0}  # fmt: skip
                            if chat:
                                path, messages = "/v1/chat/completions", 1
                                body["messages"] = [{"role": "user", "content": prompt}]
                            else:
                                path, messages = "/v1/completions", 0
                                body["prompt"] = prompt
                            r = await c.post(path, content=json.dumps(body),
                                             headers={"content-type": "application/json"})  # fmt: skip
                            r.raise_for_status()
                            data = r.json()
                            usage = data["usage"]
                            nbytes = len(_text(data).encode())
                            sums[0] += usage["completion_tokens"]
                            sums[1] += nbytes + SLACK_PER_CHOICE
                            sums[2] += usage["prompt_tokens"]
                            sums[3] += estimate_prompt_tokens(prompt, messages)
                            sums[4] += nbytes
                            print(f"  ... {kind}: {usage}, {nbytes} bytes", flush=True)
                    rows[kind] = sums
        finally:
            await svc.stop()
    print(f"engine {engine_kind}, max_tokens {max_tokens}, completion and chat a prompt")
    print(f"  {'kind':10} {'answers':>7} {'compl/cap':>9} {'tok/byte':>8} {'prompt/cap':>10}")
    comp, prom = [], []
    for kind, (ct, ccap, pt, pcap, nbytes) in rows.items():
        n = 2 * len(KINDS[kind])
        comp.append(ct / ccap)
        prom.append(pt / pcap)
        print(f"  {kind:10} {n:7d} {ct / ccap:9.3f} {ct / max(1, nbytes):8.3f} {pt / pcap:10.3f}")
    total = [sum(r[i] for r in rows.values()) for i in range(4)]
    print(f"  {'all':10} {'':7} {total[0] / total[1]:9.3f} {'':8} {total[2] / total[3]:10.3f}")
    print(f"  spread across kinds (largest / smallest): completion {max(comp) / min(comp):.2f}, "
          f"prompt {max(prom) / min(prom):.2f}")  # fmt: skip
    print(f"  a token a byte: 1.000 of each cap = completion {total[1] / total[0]:.2f}x, "
          f"prompt {total[3] / total[2]:.2f}x the honest mix")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--engine", choices=("llama-cpp", "sim", "tokenizer"), default="llama-cpp")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    if args.engine == "tokenizer":
        tokenizer_only()
    else:
        asyncio.run(run(args.engine, args.max_tokens))


if __name__ == "__main__":
    main()
