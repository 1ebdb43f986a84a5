"""Canary probes end to end: verdicts, quarantine, what a probe looks like, its shapes,
references, the admin key and the scheduler."""

from __future__ import annotations

import random
from typing import Any

import httpx

from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Mix, Shape
from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.registry.canary_scheduler import CanaryScheduler
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    an_hour_later,
    canned,
    honest,
    mesh,
    nodes_view,
    prober,
    register,
    requantised,
    run_round,
    trust,
)
from tests.registry.helpers import Harness

__all__ = ["mesh"]  # the fixture

NO_VERIFIER = (
    "no verifier hosts this file: mark a node you trust that serves it as one "
    "(`llm-mesh registry nodes trust NODE_ID`)"
)


def no_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": "whatever", "logprobs": None}]}


async def test_no_verifier_means_unverified_and_nobody_is_flagged(mesh: Harness) -> None:
    """Found 2026-12-07 (newuser45): the admin's first `registry canary run` said
    "unverified: no verifier hosts this file" of every node, and not what makes one."""
    await register(mesh, "node-a", canned)
    results = await run_round(mesh)
    assert [(r["node_id"], r["verdict"]) for r in results] == [("node-a", "unverified")]
    assert results[0]["detail"] == NO_VERIFIER
    assert "`llm-mesh registry nodes trust NODE_ID`" in results[0]["detail"]
    assert mesh.nodes.calls() == 0  # no reference, no probe
    assert (await nodes_view(mesh))["node-a"]["quarantined"] == []


async def test_honest_passes_liars_fail_and_are_quarantined(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "honest")
    await register(mesh, "requant", requantised)
    await register(mesh, "canned", canned)
    await register(mesh, "silent", no_logprobs)
    await trust(mesh, "verifier")
    # a requantised model's text is the reference's: only log-probabilities tell it, which
    # a streamed probe has none of (streams: test_streamed_probes_judge_the_text); greedy
    # probes here (sampled ones name other reasons: tests/registry/test_canary_sampled.py),
    # each asking log-probabilities (which of them did hung on the draw: fresh35)
    prober(mesh).mix = Mix(stream_share=0.0, sampled_share=0.0, no_logprobs_share=0.0)
    verdicts = {r["node_id"]: r for r in await run_round(mesh, model=MODEL)}
    assert verdicts["honest"]["verdict"] == "pass"
    assert verdicts["verifier"]["verdict"] == "unverified"  # no other verifier to check it
    assert verdicts["verifier"]["detail"] == (
        "no other verifier hosts this file (a verifier is not checked against itself)"
    )
    for liar, reason in (("requant", "logprob"), ("canned", "token"), ("silent", "no_logprobs")):
        assert verdicts[liar]["verdict"] == "fail", verdicts[liar]
        assert verdicts[liar]["detail"].startswith(reason)
        assert verdicts[liar]["quarantined"]
    view = await nodes_view(mesh)  # the tally is shown from the next hour on, a quarantine at once
    assert view["honest"]["quarantined"] == [] and view["honest"]["canary_passed"] == 0
    assert [x["model"] for x in view["canned"]["quarantined"]] == [MODEL]
    assert mesh.runtime.quality is not None
    an_hour_later(mesh.runtime.quality)
    view = await nodes_view(mesh)
    assert view["honest"]["quarantined"] == [] and view["honest"]["canary_passed"] == 1
    q = view["canned"]["quarantined"]
    assert [x["model"] for x in q] == [MODEL] and q[0]["reason"].startswith("canary: token")
    assert view["canned"]["trust_score"] == 0.0 and not view["canned"]["trusted"]
    assert view["honest"]["trusted"] and view["verifier"]["verifier"]
    # a second round probes no quarantined node
    again = {r["node_id"] for r in await run_round(mesh)}
    assert again == {"verifier", "honest"}


async def test_a_probe_looks_like_a_forwarded_request(mesh: Harness) -> None:
    """Whatever shape a probe has, a user's request of that shape reaches the node the
    same: the same path, the same header names, a request id of the same pattern, the
    same body bytes (the gateway forwards a client's body as it came)."""
    verifier = await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    p = prober(mesh)
    import time

    from LLM_Mesh.core.canary_shape import choose, render
    from LLM_Mesh.core.gateway_auth import GatewayVerifier

    check = GatewayVerifier(mesh.runtime.signer.public_key, "node-a")
    for seed in range(12):
        shape = choose(random.Random(seed))
        assert (await p.probe("node-a", MODEL, "def f():", shape)).verdict == "pass"
        probe = node.calls[-1]
        ref = verifier.calls[-1]
        user_raw = render(shape, MODEL, "def f():")  # what a client of that shape sends
        r = await mesh.client.post(
            probe["path"], content=user_raw, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 200, r.text
        user = node.calls[-1]
        assert user["body"] == probe["body"] and user["raw"] == probe["raw"]
        assert probe["path"] == user["path"]
        assert sorted(probe["headers"].keys()) == sorted(user["headers"].keys())
        for name in probe["headers"]:
            if name not in ("x-request-id", "x-mesh-gateway-signature", "x-mesh-gateway-timestamp"):
                assert probe["headers"][name] == user["headers"][name], name
        for h in (probe, user, ref):
            assert h["headers"]["x-mesh-gateway-signature"]
            assert h["headers"]["x-request-id"].startswith("req-")
        assert len(probe["headers"]["x-request-id"]) == len(user["headers"]["x-request-id"])
        assert probe["headers"]["x-request-id"] != ref["headers"]["x-request-id"]
        # the gateway's signature over the probe verifies as any forwarded request's does
        assert check.verify(probe["headers"], probe["path"], probe["raw"], time.time())


async def test_probe_shapes_vary_and_an_honest_node_passes_every_one(mesh: Harness) -> None:
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    p = prober(mesh)
    results = []
    for seed in range(40):
        p.rng = random.Random(seed)
        results.append(await p.probe("node-a", MODEL))
    assert {r.verdict for r in results} == {"pass"}, [r for r in results if r.verdict != "pass"]
    bodies = [c["body"] for c in node.calls]
    raws = [c["raw"] for c in node.calls]
    assert {c["path"] for c in node.calls} == {"/v1/completions", CHAT_PATH}
    assert {bool(b.get("stream")) for b in bodies} == {True, False}
    lengths = {b.get("max_tokens", b.get("max_completion_tokens")) for b in bodies} - {None}
    assert len(lengths) > 5 and min(lengths) >= DEFAULT_MIX.min_tokens
    assert len({tuple(b) for b in bodies}) > 10  # fields and their order
    assert any(b", " in r for r in raws) and any(b", " not in r for r in raws)  # spacing
    assert any("n" in b for b in bodies) and any("top_p" in b for b in bodies)
    assert any("stream_options" in b for b in bodies)
    assert 0 in {b["temperature"] for b in bodies} and len({b["temperature"] for b in bodies}) > 2
    assert not any(b.get("stream") and "logprobs" in b for b in bodies)  # streams ask none
    # streams are sampled too since probe32 (judged by the reference's numbers)
    assert any(b.get("stream") and b["temperature"] for b in bodies)


def old_shape_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to exactly the probes' old shape (completions, not streamed, ``max_tokens``
    16, ``logprobs`` 5), a cheaper model's text to everything else."""
    old = set(body) == {"model", "prompt", "max_tokens", "temperature", "logprobs"}
    if old and body["max_tokens"] == 16 and body["logprobs"] == 5:
        return honest(body)
    return canned(body)


async def test_a_node_honest_only_to_the_old_probe_shape_is_caught(mesh: Harness) -> None:
    await register(mesh, "verifier")
    node = await register(mesh, "liar", old_shape_liar)
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.rng = random.Random(7)
    results = [await p.probe("liar", MODEL, prompt="def f():")]
    while results[-1].verdict == "pass" and len(results) < 5:
        results.append(await p.probe("liar", MODEL, prompt="def f():"))
    assert results[-1].verdict == "fail" and results[-1].quarantined, results
    assert mesh.runtime.quality is not None
    assert mesh.runtime.quality.quarantined("liar", MODEL)
    assert node.calls  # it answered probes; none of them was in the shape it is honest to


async def test_references_are_cached_per_file_and_prompt(mesh: Harness) -> None:
    """One reference per (file, endpoint, prompt), whatever the probes' lengths and forms."""
    verifier = await register(mesh, "verifier")
    await register(mesh, "a")
    await register(mesh, "b")
    await trust(mesh, "verifier")
    p = prober(mesh)
    shapes = (Shape(max_tokens=12), Shape(stream=True, max_tokens=20),
              Shape(max_tokens=32, style="hand", extras=(("n", 1),)))  # fmt: skip
    for node, shape in zip(("a", "b", "a"), shapes, strict=True):
        assert (await p.probe(node, MODEL, prompt="def f():", shape=shape)).verdict == "pass"
    assert len(verifier.calls) == 1
    assert (await p.probe("a", MODEL, prompt="def f():", shape=Shape(path=CHAT_PATH))).verdict
    assert len(verifier.calls) == 2  # the chat endpoint has its own reference


async def test_another_file_has_no_reference(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "other-file", canned, sha="b" * 64)
    await register(mesh, "no-sha", canned, sha=None)
    await trust(mesh, "verifier")
    results = {r["node_id"]: r for r in await run_round(mesh)}
    assert results["other-file"]["verdict"] == "unverified"
    assert results["no-sha"]["verdict"] == "unverified"
    assert results["other-file"]["detail"] == NO_VERIFIER
    # found 2026-12-05 (`registry canary run` of two sim nodes, one trusted): "no verifier
    # hosts this file" beside a verifier of the model; what is missing is the node's sha256
    assert results["no-sha"]["detail"].startswith("the node declares no sha256 for this file")


async def test_canary_run_needs_the_admin_key(mesh: Harness) -> None:
    r = await mesh.client.post("/mesh/canary/run")
    assert r.status_code == 401
    r = await mesh.client.post("/mesh/canary/run", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_scheduler_probes_pairs_with_a_verifier_when_due(mesh: Harness) -> None:
    await register(mesh, "verifier")
    node = await register(mesh, "a")
    p = prober(mesh)
    sched = CanaryScheduler(p, ProbeBudget(min_interval_s=600.0), rng=random.Random(3))
    walked: list[int] = []
    targets = p.targets

    def counted(*args: Any, **kw: Any) -> list[tuple[str, str]]:
        walked.append(1)
        return targets(*args, **kw)

    p.targets = counted  # type: ignore[method-assign]
    assert await sched.poll() == []  # no verifier: nothing to probe,
    assert walked == []  # and no walk over every node to find that out
    await trust(mesh, "verifier")
    assert await sched.poll() == []  # the first probe comes at a random time in the interval
    assert ("a", MODEL) in sched.due and walked == [1]

    async def later(seconds: float) -> None:
        mesh.clock.advance(seconds)
        for n in ("verifier", "a"):  # still alive
            assert (
                await mesh.client.post(f"/mesh/nodes/{n}/heartbeat", json={})
            ).status_code == 200

    # exponential waits (core/probe_budget.py): advance to each drawn due time
    await later(sched.due[("a", MODEL)] - mesh.clock() + 0.001)
    results = await sched.poll()
    assert [(r.node_id, r.verdict) for r in results] == [("a", "pass")]
    assert len(node.calls) == 1
    assert await sched.poll() == []  # not due again yet
    assert sched.wait_s() <= sched.interval_s
    await later(sched.due[("a", MODEL)] - mesh.clock() + 0.001)
    assert [r.node_id for r in await sched.poll()] == ["a"]


async def test_a_node_that_errors_gets_no_verdict(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "down")
    await trust(mesh, "verifier")
    mesh.nodes.nodes["down:8801"].behavior = "500"
    nodes = mesh.nodes
    assert isinstance(nodes, LogprobNodes)

    def boom(body: dict[str, Any]) -> dict[str, Any]:
        raise httpx.ConnectError("refused")

    nodes.answers["down"] = boom
    result = await prober(mesh).probe("down", MODEL, prompt="x")
    assert result.verdict == "error"
    q = mesh.runtime.quality
    assert q is not None and not q.quarantined("down", MODEL)


def too_slow(body: dict[str, Any]) -> dict[str, Any]:
    raise httpx.ReadTimeout("read timed out")


async def test_a_probe_the_node_did_not_answer_in_time_says_what_it_means(mesh: Harness) -> None:
    """Found 2026-12-07 (newuser45): a probe a busy 2-core node did not answer within the
    deadline printed, in the admin's `registry canary run`, the gateway's advice to a client
    ("Ask for fewer tokens ..., or stream the answer"), which the admin cannot follow."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    for stream_share in (0.0, 1.0):  # a node fails once: then it is out of routing a while
        node = f"slow-{stream_share:g}"
        await register(mesh, node, too_slow)
        prober(mesh).mix = Mix(stream_share=stream_share)
        (result,) = await run_round(mesh, node=node)
        detail = result["detail"]
        assert result["verdict"] == "error" and "deadline" in detail, result
        assert "Ask for" not in detail and "stream: true" not in detail, detail
        assert "no verdict: the node is slow or busy for this probe" in detail, detail
        assert "should serve a smaller model" in detail, detail
