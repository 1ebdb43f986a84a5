"""How far an honest node's ``usage`` is from its probe's log-probability entries and from
the verifier's ``usage`` for the same body: the slack of ``core/canary_usage.py``, measured.

Runs a node (``NodeService`` and its app, no sockets) on the real gemma-3-270m llama.cpp
engine (``--engine llama-cpp``, the default) or the sim engine (``--engine sim``), and asks
it every probe shape's body (completion and chat, streamed or not, several ``max_tokens``,
each ``stop`` list) for prompts of the public pool, and the reference's body for the same
(the verifier hosts the same file: the same engine answers it). Prints, per kind, the spread of

* ``completion_tokens - entries`` (a non-streamed probe: its own log-probability entries),
* ``completion_tokens - reference entries`` (the fewest of the reference's entries, cut to
  the probe's length, that spell the answer's text where it is a beginning of theirs:
  ``core/canary_usage.covering_entries``),
* ``prompt_tokens - reference prompt_tokens``,

and the largest excess of each over the rule's bound (0: every honest answer within it).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_canary_usage.py [--engine sim]
        [--prompts 24] [--lengths 12,16,24,32,64] [--stop-lists 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary import answer_from_openai, truncated
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_shape import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    DEFAULT_MIX,
    STOP_LISTS,
    Shape,
    reference_shape,
    render,
)
from LLM_Mesh.core.canary_usage import (
    DEFAULT_SLACK,
    StatedUsage,
    check_usage,
    covering_entries,
    stated_usage,
)
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.base import Engine
from LLM_Mesh.node.service import NodeService

MODEL = "gemma-3-270m"


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


def stream_usage(sse: bytes) -> tuple[str, dict[str, Any] | None]:
    text, usage = [], None
    for line in sse.decode().splitlines():
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        obj = json.loads(line[5:])
        for ch in obj.get("choices") or []:
            text.append(ch.get("text") or (ch.get("delta") or {}).get("content") or "")
        if isinstance(obj.get("usage"), dict):
            usage = obj["usage"]
    return "".join(text), usage


def shapes(lengths: tuple[int, ...], stop_lists: int) -> list[Shape]:
    out = []
    for path in (COMPLETIONS_PATH, CHAT_PATH):
        for stream in (False, True):
            for max_tokens in lengths:
                out.append(Shape(path=path, stream=stream, max_tokens=max_tokens))
            for stop in STOP_LISTS[:stop_lists]:
                out.append(Shape(path=path, stream=stream, max_tokens=32,
                                 sampling=(("stop", stop),)))  # fmt: skip
            out.append(Shape(path=path, stream=stream, max_tokens=24,
                             system="You are a helpful assistant.",
                             history=(("Hi", "Sure, here you go."),)))  # fmt: skip
    return out


async def run(engine_kind: str, n_prompts: int, lengths: tuple[int, ...], stop_lists: int) -> None:
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
        deltas: dict[str, list[int]] = defaultdict(list)
        over: dict[str, int] = defaultdict(int)
        n = 0
        t0 = time.monotonic()
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8801", timeout=600
            ) as c:
                refs: dict[bytes, tuple[Any, StatedUsage]] = {}
                for prompt in PROMPTS[:n_prompts]:
                    for shape in shapes(lengths, stop_lists):
                        rs = reference_shape(shape, DEFAULT_MIX)
                        rraw = render(rs, MODEL, prompt)
                        if rraw not in refs:
                            r = await c.post(rs.path, content=rraw,
                                             headers={"content-type": "application/json"})  # fmt: skip
                            r.raise_for_status()
                            rb = r.json()
                            refs[rraw] = (answer_from_openai(rb), stated_usage(rb))
                        ref, ref_usage = refs[rraw]
                        raw = render(shape, MODEL, prompt)
                        r = await c.post(shape.path, content=raw,
                                         headers={"content-type": "application/json"})  # fmt: skip
                        r.raise_for_status()
                        if shape.stream:
                            text, usage = stream_usage(r.content)
                            got = stated_usage({"usage": usage})
                            entries = None
                        else:
                            body = r.json()
                            got, entries = stated_usage(body), len(answer_from_openai(body).tokens)
                            text = answer_from_openai(body).text
                        kind = ("chat" if shape.chat else "completion") + (
                            " stream" if shape.stream else ""
                        )
                        assert got is not None and ref_usage is not None
                        cut = truncated(ref, shape.max_tokens)
                        covered = covering_entries(text, [t.token for t in cut.tokens])
                        if entries is not None:
                            deltas[kind + ": completion - entries"].append(got.completion - entries)
                        if covered is not None:
                            deltas[kind + ": completion - reference entries"].append(
                                got.completion - covered
                            )
                        else:
                            deltas[kind + ": not covered by the reference"].append(0)
                        deltas[kind + ": prompt - reference prompt"].append(
                            got.prompt - ref_usage.prompt
                        )
                        v = check_usage(
                            got, ref_usage, entries=entries,
                            reference_entries=covered,
                            stop_bytes=max((len(s.encode()) for s in
                                            dict(shape.sampling).get("stop", ())), default=0),
                            slack=DEFAULT_SLACK,
                        )  # fmt: skip
                        n += 1
                        if n % 20 == 0:
                            print(
                                f"  ... {n} probes {kind} {shape.max_tokens} {time.monotonic() - t0:.1f}s",
                                flush=True,
                            )
                        if v is not None:
                            over[kind] += 1
                            print("OVER", kind, repr(prompt[:30]), shape.max_tokens,
                                  dict(shape.sampling), v, repr(text[:40]))  # fmt: skip
        finally:
            await svc.stop()
        print(f"engine {engine_kind}: {n} probes over {n_prompts} prompts")
        for key in sorted(deltas):
            vals = deltas[key]
            hist: dict[int, int] = defaultdict(int)
            for v in vals:
                hist[v] += 1
            print(f"  {key}: n={len(vals)} min={min(vals)} max={max(vals)} "
                  f"counts={dict(sorted(hist.items()))}")  # fmt: skip
        print(f"  over the rule's bound: {dict(over) or 0}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--engine", choices=("llama-cpp", "sim"), default="llama-cpp")
    ap.add_argument("--prompts", type=int, default=24, help="the pool's first N prompts")
    ap.add_argument("--lengths", default="12,16,24,32,64", help="max_tokens asked")
    ap.add_argument("--stop-lists", type=int, default=len(STOP_LISTS), help="the first N")
    args = ap.parse_args()
    lengths = tuple(int(x) for x in args.lengths.split(","))
    asyncio.run(run(args.engine, args.prompts, lengths, args.stop_lists))


if __name__ == "__main__":
    main()
