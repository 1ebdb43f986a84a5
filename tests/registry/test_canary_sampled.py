"""Sampled canary probes through the registry, against sim-engine nodes.

A node honest only at ``temperature: 0`` and serving another model to every sampled
request (most users' requests) must be caught; an honest node that samples as a model
does (the sim engine's ``sampled=True``: its answers leave the greedy path) must pass,
and so must its streamed probes (``temperature: 0``, the mix's share of them): their text
and their ``usage`` (held to the reference's entries, ``core/canary_usage.py``).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Shape
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.sim import SimEngine
from tests.registry.canary_mesh import MODEL, STREAM_PIECES, mesh, prober, register, trust
from tests.registry.helpers import Harness

__all__ = ["mesh"]  # the fixture


async def _no_wait(_s: float) -> None:
    return None


def sim(seed: int = 0, *, sampled: bool = True, answer_tokens: int | None = None) -> SimEngine:
    return SimEngine([MODEL], ttft_s=0.0, seed=seed, sleep=_no_wait, sampled=sampled,
                     answer_tokens=answer_tokens)  # fmt: skip


def request_of(body: dict[str, Any]) -> GenerationRequest:
    """The generation a node runs for an OpenAI ``body`` (as the node's HTTP layer does)."""
    chat = "messages" in body
    n = body.get("top_logprobs") if chat and body.get("logprobs") else body.get("logprobs")
    return GenerationRequest(
        kind="chat" if chat else "completion", model=body["model"],
        prompt=body.get("prompt"), messages=body.get("messages"),
        max_tokens=body.get("max_tokens", body.get("max_completion_tokens")),
        temperature=body.get("temperature"), top_p=body.get("top_p"), seed=body.get("seed"),
        stop=list(body.get("stop") or []), top_logprobs=n if isinstance(n, int) else None,
        presence_penalty=body.get("presence_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
    )  # fmt: skip


def run(engine: SimEngine, req: GenerationRequest) -> list[Delta]:
    async def collect() -> list[Delta]:
        return [d async for d in engine.stream(req, threading.Event())]

    with ThreadPoolExecutor(1) as pool:  # the fake node's handler is synchronous
        return pool.submit(asyncio.run, collect()).result()


def answered_by(engine: SimEngine) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A fake node's answer function that runs ``engine`` (completion shape; the fake
    nodes give chat bodies chat's shape)."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        out = run(engine, request_of(body))
        text = "".join(d.text for d in out)
        lps = out[-1].logprobs
        lp = None
        if lps is not None:
            lp = {
                "tokens": [t.token for t in lps],
                "token_logprobs": [t.logprob for t in lps],
                "top_logprobs": [dict(t.top) for t in lps],
                "text_offset": list(range(len(lps))),
            }
        usage = out[-1].usage
        assert usage is not None
        choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": out[-1].finish_reason}
        # streamed, one chunk a delta as the node's app streams them (found 2026-12-05: a few
        # characters a chunk made more chunks than tokens, cut at max_tokens by the gateway)
        pieces = [d.text for d in out if d.text]
        return {"choices": [choice], "usage": usage.to_dict(), STREAM_PIECES: pieces}

    return answer


def greedy_only_liar(honest: SimEngine, other: SimEngine) -> Callable[[dict[str, Any]], Any]:
    """Honest at ``temperature: 0`` (every probe before), another model's answers (its
    own log-probabilities) to every sampled request."""
    truthful, lying = answered_by(honest), answered_by(other)

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return lying(body) if (body.get("temperature") or 0) > 0 else truthful(body)

    return answer


async def test_a_node_honest_only_at_temperature_0_is_caught(mesh: Harness) -> None:
    """Before sampled probes (every probe ``temperature: 0``, what ``sampled_share=0``
    still draws) it passed every probe, streamed ones included (a sim stream has no sure
    token: ``unverified``, its count held to the reference's entries); now a sampled probe
    catches it."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", greedy_only_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)

    async def verdicts(mix_share: float) -> list[Any]:
        p.mix = replace(DEFAULT_MIX, sampled_share=mix_share)
        out = []
        for seed in range(40):
            p.rng = random.Random(seed)
            out.append(await p.probe("liar", MODEL))
            if out[-1].verdict == "fail":
                break
        return out

    before = await verdicts(0.0)
    assert len(before) == 40 and {r.verdict for r in before} == {"pass", "unverified"}, before
    streamed = [b for c in mesh.nodes.nodes["liar:8801"].calls if (b := c["body"]).get("stream")]
    assert len(streamed) > 8  # the mix's share, each passed (unverified) on its count too
    after = await verdicts(DEFAULT_MIX.sampled_share)
    assert after[-1].verdict == "fail" and after[-1].quarantined, after
    liar_bodies = [c["body"] for c in mesh.nodes.nodes["liar:8801"].calls]
    assert any((b.get("temperature") or 0) > 0 for b in liar_bodies)
    verifier_bodies = [c["body"] for c in mesh.nodes.nodes["verifier:8801"].calls]
    assert all(b["temperature"] == 0 for b in verifier_bodies)  # the reference is greedy


async def test_an_honest_sampling_node_passes_sampled_probes_over_many_seeds(
    mesh: Harness,
) -> None:
    """Every probe sampled, the mix's share streamed or asking no ``logprobs`` (judged by the
    reference's numbers since probe32 and probe33, ``core/canary_sampled_text.py``;
    deterministic seeds): the honest node's
    sampled answers leave the greedy path (most of them), and every probe passes (a stream:
    its text and its count within)."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0)
    results = []
    for seed in range(150):
        p.rng = random.Random(seed)
        results.append(await p.probe("honest", MODEL))
    bad = [r for r in results if r.verdict not in ("pass", "unverified")]
    assert not bad, bad
    sampled = [r for r in results if r.detail.startswith("sampled_")]
    diverged = [r for r in sampled if r.detail.startswith(("sampled_diverged", "sampled_text_d"))]
    assert len(sampled) > 60 and len(diverged) > len(sampled) // 2, (len(sampled), len(diverged))
    bodies = [c["body"] for c in mesh.nodes.nodes["honest:8801"].calls]
    streams = [b for b in bodies if b.get("stream")]
    temps = {b.get("temperature") for b in bodies if not b.get("stream")}
    assert len(temps) > 4 and 0 not in temps  # user-like temperatures, every one sampled
    assert len(streams) > 30 and 0 not in {b["temperature"] for b in streams}  # sampled too
    bare = [b for b in bodies if not b.get("stream") and not b.get("logprobs")]  # probe33
    assert len(bare) > 15 and 0 not in {b["temperature"] for b in bare}
    by_text = [r for r in results if r.detail.startswith("sampled_text_")]
    assert len(by_text) == len(streams) + len(bare)  # each judged by its text (and count)
    assert sum(r.detail.startswith("sampled_text_diverged") for r in by_text) > len(by_text) // 2


async def test_each_endpoint_sampled_shape_passes_honest_and_fails_another_model(
    mesh: Harness,
) -> None:
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await register(mesh, "other", answered_by(sim(seed=3)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    for path in ("/v1/completions", CHAT_PATH):
        for sampler in ((), (("top_p", 0.9),), (("top_p", 0.95),)):
            shape = Shape(path=path, max_tokens=24, temperature=0.8, sampler=sampler)
            ok = await p.probe("honest", MODEL, "def f():", shape)
            assert ok.verdict == "pass", (shape, ok)
    bad = await p.probe("other", MODEL, "def f():", Shape(max_tokens=24, temperature=0.7))
    assert bad.verdict == "fail", bad


def counting_more(answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    """``answer`` with its ``usage`` completion count 5 over what it generated and a token
    more a whitespace character of its text (each may be a token of its own to a text-only
    probe since ws34: ``core/canary_usage.covering_entries``), its text the model's; below
    the probes' limits here, so the gateway does not clip it."""

    def inflated(body: dict[str, Any]) -> dict[str, Any]:
        data = answer(body)
        u = data["usage"]
        more = 5 + sum(ch.isspace() for ch in data["choices"][0]["text"])
        data["usage"] = {**u, "completion_tokens": u["completion_tokens"] + more,
                         "total_tokens": u["total_tokens"] + more}  # fmt: skip
        return data

    return inflated


STREAMED = [
    (("stream_options", {"include_usage": True}),),
    (("n", 1), ("top_p", 1)),
    (),
]


async def test_each_endpoint_streamed_shape_passes_honest_and_fails_an_inflated_count(
    mesh: Harness,
) -> None:
    """Streamed probes (``temperature: 0``) of each endpoint, with the optional fields, a
    ``stop`` list, limits past the answer's end and past the reference's: the honest
    sampling sim node passes each (``unverified``: a sim stream has no sure token), its
    ``usage`` held to the reference's entries; the same node stating 5 more completion
    tokens (and one a whitespace character) fails each within the reference's length on
    that count (the check ran). Five tokens: its bound (5 + 4 spaces + 2, + 2 for the
    stop) stays below the gateway's cap at ``max_tokens`` 16 for the inflated count."""
    await register(mesh, "verifier", answered_by(sim(answer_tokens=5)))
    await register(mesh, "honest", answered_by(sim(answer_tokens=5)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    shapes = [
        Shape(path=path, stream=True, max_tokens=limit, extras=extras, sampling=sampling)
        for path in ("/v1/completions", CHAT_PATH)
        for extras in STREAMED
        for limit in (16, 32, 200)
        for sampling in ((), (("stop", ("\n\n",)),))
    ]
    for i, shape in enumerate(shapes):
        ok = await p.probe("honest", MODEL, "def f():", shape)
        assert ok.verdict == "unverified", (shape, ok)
        await register(mesh, f"inflated{i}", counting_more(answered_by(sim(answer_tokens=5))))
        bad = await p.probe(f"inflated{i}", MODEL, "def f():", shape)
        assert bad.verdict == "fail" and bad.detail.startswith("usage_completion"), (shape, bad)
    bodies = [c["body"] for c in mesh.nodes.nodes["honest:8801"].calls]
    assert len(bodies) == len(shapes) and all(b["temperature"] == 0 for b in bodies)


async def test_a_sampled_probe_is_judged_at_its_own_temperature(
    mesh: Harness, monkeypatch: Any
) -> None:
    """The prober hands the judge the temperature it sent (``compare_sampled``'s
    ``temperature``: a confident arg max left at 0.2 fails, at 1.0 it may be a draw;
    review31: it was judged as at any temperature)."""
    from LLM_Mesh.core import canary_sampled
    from LLM_Mesh.registry import canary as registry_canary

    seen: list[float] = []

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(kw.get("temperature", -1.0))
        return canary_sampled.compare_sampled(*args, **kw)

    monkeypatch.setattr(registry_canary, "compare_sampled", spy)
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    for t in (0.2, 0.7):
        got = await p.probe("honest", MODEL, "def f():", Shape(max_tokens=24, temperature=t))
        assert got.verdict == "pass", got
    assert seen == [0.2, 0.7]
