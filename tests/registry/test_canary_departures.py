"""The test across sampled probes (``core/canary_departures.py``) through the registry.

A node that runs the real model for the first token only, always leaves its arg max there
and serves another model after passes each sampled probe at 0.7–1.0 (review31's bound per
probe: such a pick is plausible once); across probes it leaves the arg max far more often
than an honest sampler would, and is quarantined. An honest sampling sim node is never.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from LLM_Mesh.core.canary_departures import (
    SLICES,
    TALLIES,
    Departures,
    DepartureTest,
    Evidence,
    kind_of,
    slices_of,
)
from LLM_Mesh.core.canary_shape import DEFAULT_MIX, Mix, Shape, choose
from LLM_Mesh.registry.canary import CanaryProber, ProbeResult
from tests.registry.canary_mesh import MODEL, STREAM_PIECES, mesh, prober, register, trust
from tests.registry.helpers import Harness
from tests.registry.test_canary_sampled import answered_by, sim

__all__ = ["mesh"]  # the fixture


def leaves_at_once(honest: Any, other: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Honest at ``temperature: 0``; to a sampled request, the real model's first position
    (its numbers) with the runner-up picked there, then another model's tokens (streamed:
    the same lie, its text alone, one chunk a token; so is one asking no ``logprobs``)."""
    truthful, cheap = answered_by(honest), answered_by(other)

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if not (body.get("temperature") or 0) > 0:
            return truthful(body)
        if body.get("stream") or not body.get("logprobs"):  # the lie's text, no numbers
            asks = {"logprobs": True, "top_logprobs": 5} if "messages" in body else {"logprobs": 5}
            out = answer({**body, "stream": False, **asks})
            out[STREAM_PIECES] = out["choices"][0]["logprobs"]["tokens"]
            out["choices"][0]["logprobs"] = None
            return out
        real = truthful({**body, "temperature": 0})["choices"][0]["logprobs"]
        rest = cheap(body)
        rest.pop(STREAM_PIECES, None)
        lp = rest["choices"][0]["logprobs"]
        first = real["top_logprobs"][0]
        pick, value = sorted(first.items(), key=lambda kv: -kv[1])[1]  # never the arg max
        tokens = [pick, *lp["tokens"][1:]]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": [value, *lp["token_logprobs"][1:]],
            "top_logprobs": [first, *lp["top_logprobs"][1:]],
            "text_offset": list(range(len(tokens))),
        }
        choice = {**rest["choices"][0], "text": "".join(tokens), "logprobs": logprobs}
        usage = {**rest["usage"], "completion_tokens": len(tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + len(tokens)
        return {**rest, "choices": [choice], "usage": usage}

    return answer


@dataclass
class Watched:
    """What :func:`watch` saw: probes counted, the highest CUSUM of any tally."""

    added: int = 0
    highest: float = 0.0


def watch(p: CanaryProber) -> Watched:
    """Count the prober's evidence as it is added, and the highest score any of the node's
    tallies reaches (over every sampled probe, one kind of answer alone, or one slice of
    a kind)."""
    seen, original = Watched(), p.departures.add

    def watched(node: str, model: str, ev: Any, kind: str = "", slices: Any = ()) -> Any:
        seen.added += 1
        got = original(node, model, ev, kind, slices)
        tallies = [
            p.departures.tallies.get((node, model)),
            p.departures.kinds.get((node, model, kind)),
            *(p.departures.slices.get((node, model, kind, part)) for part in slices),
        ]
        seen.highest = max([seen.highest] + [t.score for t in tallies if t is not None])
        return got

    p.departures.add = watched  # type: ignore[method-assign]
    return seen


async def probes(
    p: CanaryProber, node: str, count: int, mix: Mix | None = None
) -> list[ProbeResult]:
    """Up to ``count`` probes of ``node`` (seeded shapes: ``p.mix`` set to ``mix``, by
    default every non-streamed one sampled), stopping at the first failure."""
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0) if mix is None else mix
    out = []
    for seed in range(count):
        p.rng = random.Random(seed)
        out.append(await p.probe(node, MODEL))
        if out[-1].verdict == "fail":
            break
    return out


async def test_a_node_leaving_the_arg_max_at_once_is_flagged_across_probes(
    mesh: Harness,
) -> None:
    """Without the test across probes (its threshold out of reach: what the prober did
    before) the liar passes every one of 120 probes; with it, it is quarantined within
    them, the reason naming the statistic; the admin's clear starts its evidence afresh."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", leaves_at_once(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.departures = Departures(DepartureTest(threshold=math.inf))
    before = await probes(p, "liar", 120)
    assert len(before) == 120 and {r.verdict for r in before} == {"pass"}  # streams judged
    at_once = ("sampled_diverged at token 0", "sampled_text_diverged at token 0")
    assert sum(r.detail.startswith(at_once) for r in before) > 100
    p.departures = Departures()
    p.quality.cleared[:] = [p.departures.forget]
    after = await probes(p, "liar", 120)
    flagged = after[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, flagged
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    assert len(after) < 80, len(after)  # the number of probes it took (reported)
    print(f"flagged after {len(after)} probes: {flagged.detail}")
    assert ("liar", MODEL) not in p.departures.tallies  # flagged: not kept
    p.departures.add("liar", MODEL, Evidence(3.0, 1, 0))  # some evidence again
    assert ("liar", MODEL) in p.departures.tallies
    await p.quality.clear("liar")
    assert ("liar", MODEL) not in p.departures.tallies  # the admin's clear: afresh


async def test_an_honest_sampling_node_is_never_flagged_over_many_probes(
    mesh: Harness,
) -> None:
    """200 seeded probes (every non-streamed one sampled, at 0.2–1.0, some with ``top_p``):
    the honest sampling sim node, which leaves the arg max as often as its distribution
    says, passes every one, its CUSUM staying far below the threshold."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    seen = watch(p)
    results = await probes(p, "honest", 200)
    assert len(results) == 200 and all(r.verdict != "fail" for r in results), results[-1]
    left = [r for r in results if r.detail.startswith("sampled_diverged")]
    assert len(left) > 60, len(left)  # it left the arg max often: evidence was counted
    highest = seen.highest
    print(f"honest: highest CUSUM {highest:.2f} over {len(results)} probes")
    assert highest < p.departures.test.threshold / 2, highest


def seeded_liar(honest: Any, other: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Honest to every request without a ``seed``; leaves the arg max at once (as
    :func:`leaves_at_once`) on every sampled request that sends one."""
    truthful, liar = answered_by(honest), leaves_at_once(honest, other)
    return lambda body: liar(body) if body.get("seed") is not None else truthful(body)


async def test_a_node_leaving_the_arg_max_at_once_only_when_seeded_is_flagged(
    mesh: Harness,
) -> None:
    """The node sees ``seed``: seeded probes were all left out of the test across probes
    (a common seed's draws repeat), so lying to every seeded sampled request (users' seeded
    traffic) passed every probe. A probe's random seed (fresh: its draws are new) counts
    (it failed before: 200 of 200 passed)."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", seeded_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    out = await probes(p, "liar", 200, replace(DEFAULT_MIX, sampled_share=1.0, seed_share=1.0))
    flagged = out[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, flagged
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    print(f"flagged after {len(out)} seeded probes: {flagged.detail}")


async def test_an_honest_sampling_node_over_seeded_probes_is_never_flagged(
    mesh: Harness,
) -> None:
    """Every probe seeded (half of them a random seed: counted): the honest sampling sim
    node passes 200, its random-seeded probes' evidence counted."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0, seed_share=1.0)
    seen = watch(p)
    results = []
    for seed in range(200):
        p.rng = random.Random(seed)
        results.append(await p.probe("honest", MODEL))
    assert all(r.verdict != "fail" for r in results), [r for r in results if r.verdict == "fail"]
    added, highest = seen.added, seen.highest
    assert added > 50, added  # the random-seeded ones counted
    print(f"honest seeded: {added} counted, highest CUSUM {highest:.2f}")
    assert highest < p.departures.test.threshold / 2, highest


def stream_liar(honest: Any, other: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Honest to every request but streamed sampled ones (most users' requests), where it
    leaves the arg max at once (as :func:`leaves_at_once`): no log-probabilities shown."""
    truthful, liar = answered_by(honest), leaves_at_once(honest, other)
    return lambda body: liar(body) if body.get("stream") else truthful(body)


async def test_a_node_lying_only_to_streamed_sampled_requests_is_flagged(mesh: Harness) -> None:
    """probe32: a streamed probe was never sampled (no log-probabilities to judge it by),
    so a node lying only to streamed sampled requests passed every probe (it failed before:
    200 of 200 passed). Now a share of streamed probes is sampled and its text judged by
    the reference's own numbers (``core/canary_sampled_text.py``), counted across probes."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", stream_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    out = await probes(p, "liar", 200, replace(DEFAULT_MIX, sampled_share=1.0, stream_share=1.0))
    flagged = out[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, flagged
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    print(f"stream liar flagged after {len(out)} streamed probes: {flagged.detail}")


async def test_an_honest_sampling_node_over_streamed_probes_is_never_flagged(
    mesh: Harness,
) -> None:
    """Every probe streamed and sampled (0.2–1.0, some ``top_p``, some seeded): the honest
    sampling sim node, whose text alone is judged, passes 200, its CUSUM far below."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0, stream_share=1.0)
    seen = watch(p)
    results = []
    for seed in range(200):
        p.rng = random.Random(seed)
        results.append(await p.probe("honest", MODEL))
    assert all(r.verdict == "pass" for r in results), [r for r in results if r.verdict != "pass"]
    left = [r for r in results if r.detail.startswith("sampled_text_diverged")]
    added, highest = seen.added, seen.highest
    assert len(left) > 100 and added > 150, (len(left), added)  # evidence was counted
    print(f"honest streamed: {added} counted, highest CUSUM {highest:.2f}")
    assert highest < p.departures.test.threshold / 2, highest


def asks_logprobs(body: dict[str, Any]) -> bool:
    """Whether a non-streamed request asks for log-probabilities (either endpoint's way)."""
    return bool(body.get("logprobs")) and not body.get("stream")


def bare_liar(honest: Any, other: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Honest to every request but non-streamed ones without ``logprobs`` (many users'
    requests), where it lies as :func:`leaves_at_once` does (sampled: the real model's
    first position left, then another model; greedy: honest) and shows no numbers."""
    truthful, liar = answered_by(honest), leaves_at_once(honest, other)

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return truthful(body) if body.get("stream") or asks_logprobs(body) else liar(body)

    return answer


async def test_a_node_lying_only_to_sampled_requests_without_logprobs_is_flagged(
    mesh: Harness,
) -> None:
    """probe33: every non-streamed probe asked for ``logprobs``, so a node lying only to
    non-streamed sampled requests without them passed every probe (it failed before: 300
    of 300 passed). Now a share of non-streamed probes asks none and its text is judged as
    a sampled stream's (``core/canary_sampled_text.py``), counted across probes."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", bare_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    bare = replace(DEFAULT_MIX, sampled_share=1.0, stream_share=0.0, no_logprobs_share=1.0)
    out = await probes(p, "liar", 300, bare)
    flagged = out[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, (len(out), flagged)
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    print(f"no-logprobs liar flagged after {len(out)} non-streamed probes: {flagged.detail}")


async def test_an_honest_sampling_node_over_probes_without_logprobs_is_never_flagged(
    mesh: Harness,
) -> None:
    """Every probe non-streamed, sampled and without ``logprobs`` (0.2–1.0, some ``top_p``,
    some seeded): the honest sampling sim node, whose text alone is judged, passes 200,
    its CUSUM far below the threshold, its ``usage`` held to the reference's entries."""
    await register(mesh, "verifier", answered_by(sim()))
    node = await register(mesh, "honest", answered_by(sim()))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0, stream_share=0.0, no_logprobs_share=1.0)
    seen = watch(p)
    results = []
    for seed in range(200):
        p.rng = random.Random(seed)
        results.append(await p.probe("honest", MODEL))
    assert all(r.verdict == "pass" for r in results), [r for r in results if r.verdict != "pass"]
    left = [r for r in results if r.detail.startswith("sampled_text_diverged")]
    added, highest = seen.added, seen.highest
    assert len(left) > 100 and added > 150, (len(left), added)  # evidence was counted
    asked = [c["body"] for c in node.calls]
    assert asked and not any(asks_logprobs(b) or b.get("stream") for b in asked)
    print(f"honest without logprobs: {added} counted, highest CUSUM {highest:.2f}")
    assert highest < p.departures.test.threshold / 2, highest


async def test_a_liar_to_one_shape_is_flagged_among_honest_answers_to_the_others(
    mesh: Harness,
) -> None:
    """probe33: one CUSUM a (node, model) over every sampled probe, so a node lying only to
    non-streamed sampled requests without ``logprobs`` (the mix's 30 % of non-streamed
    probes) was credited by its honest answers to the other shapes and never flagged (it
    failed before: 300 of 300 passed). Each kind of answer (with log-probabilities, a
    stream, text without them) now has its own CUSUM too."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", bare_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    out = await probes(p, "liar", 300, replace(DEFAULT_MIX, sampled_share=1.0, stream_share=0.0))
    flagged = out[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, (len(out), flagged)
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    assert "without log-probabilities" in flagged.detail, flagged
    print(f"no-logprobs liar among honest shapes flagged after {len(out)} probes: {flagged.detail}")


class KindsOnly(Departures):
    """The test across probes as it was before canary34: the pair's and each kind's
    tallies, both at the test's threshold, no slices."""

    def threshold(self, kind: str = "", slice: str = "") -> float:
        return self.test.threshold

    def add_probe(self, node_id: str, model: str, ev: Evidence, shape: Any) -> Any:
        return self.add(node_id, model, ev, kind_of(shape))


def top_p_liar(honest: Any, other: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Honest to every request but sampled ones sending a ``top_p`` below 1 (a share of
    users' sampled requests), where it leaves the arg max at once (:func:`leaves_at_once`),
    streamed or not."""
    truthful, liar = answered_by(honest), leaves_at_once(honest, other)
    return lambda body: liar(body) if (body.get("top_p") or 1) < 1 else truthful(body)


async def test_a_liar_to_one_slice_of_every_kind_is_flagged(mesh: Harness) -> None:
    """Found 2026-12-06, canary34: a node lying only to sampled requests with a ``top_p``
    below 1 (0.4 × 3/4 of sampled probes, in every kind) was credited within each kind by
    its honest answers to the rest and passed 300 of 300 probes (the tallies as before:
    :class:`KindsOnly`). Each slice of a kind (endpoint, temperature band, ``top_p``) now
    has a CUSUM of its own: flagged, the reason naming the slice."""
    await register(mesh, "verifier", answered_by(sim()))
    await register(mesh, "liar", top_p_liar(sim(), sim(seed=7)))
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.departures = KindsOnly()
    before = await probes(p, "liar", 300)
    assert len(before) == 300 and before[-1].verdict != "fail", before[-1]
    p.departures = Departures()
    after = await probes(p, "liar", 300)
    flagged = after[-1]
    assert flagged.verdict == "fail" and flagged.quarantined, (len(after), flagged)
    assert flagged.detail.startswith("sampled_departures: log-likelihood ratio"), flagged
    assert "top_p=<1 alone" in flagged.detail, flagged
    print(f"top_p liar flagged after {len(after)} probes: {flagged.detail}")


def test_each_probe_is_in_one_slice_of_each_dimension_within_its_kind() -> None:
    """The slices partition a kind's probes along each dimension (the thresholds' union
    bound needs it), drawn by the prober before the node answers."""
    rng = random.Random(5)
    seen: dict[str, set[str]] = {}
    for _ in range(2000):
        shape = choose(rng, replace(DEFAULT_MIX, sampled_share=1.0))
        parts = slices_of(shape)
        assert [x.split("=")[0] for x in parts] == list(SLICES)
        for x in parts:
            seen.setdefault(x.split("=")[0], set()).add(x)
    assert seen == {
        "endpoint": {"endpoint=chat", "endpoint=completions"},
        "temperature": {"temperature=0.2-0.5", "temperature=0.6-0.8", "temperature=0.9-1"},
        "top_p": {"top_p=none", "top_p=1", "top_p=<1"},
    }
    d = Departures()
    h, parts = d.test.threshold, slices_of(Shape(temperature=0.7))
    keys = [("", ""), ("text", ""), *((of, x) for x in parts for of in ("text", ""))]
    assert len(keys) == TALLIES == 8
    total = sum(math.exp(-d.threshold(kind, part)) for kind, part in keys)
    assert total == pytest.approx(2 * math.exp(-h))  # the honest bound as before: 2n·e^-h
