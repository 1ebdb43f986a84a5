"""Canary probes through the registry: verdicts, quarantine, routing, trust, the admin round.

Fake nodes (a MockTransport) answer probes with log-probabilities: honest ones as the
verifier does, liars with other text or shifted log-probabilities.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Mix, Shape
from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.registry.canary import CanaryProber, CanaryScheduler
from LLM_Mesh.registry.quality import Quality, QualityWatcher
from tests.keyed import held_account
from tests.registry.helpers import ADMIN, FakeNode, FakeNodes, Harness, funded_key, running

MODEL = "gemma-3-270m"
SHA = "a" * 64


def logprobs_for(prompt: str, shift: float = 0.0) -> dict[str, Any]:
    """A deterministic 'model': four tokens per prompt with log-probabilities."""
    rng = random.Random(prompt)
    toks = [f" t{rng.randrange(50)}" for _ in range(4)]
    lps = [-rng.uniform(0.05, 1.0) for _ in toks]
    return {
        "tokens": toks,
        "token_logprobs": [lp + shift for lp in lps],
        "top_logprobs": [
            {t: lp + shift, " zz": lp - 3 + shift} for t, lp in zip(toks, lps, strict=True)
        ],
        "text_offset": [0, 1, 2, 3],
    }


Answer = Callable[[dict[str, Any]], dict[str, Any]]


def prompt_of(body: dict[str, Any]) -> str:
    """The prompt of a completion or chat body (a chat probe's one user message)."""
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body["prompt"])


def wants_logprobs(body: dict[str, Any]) -> bool:
    return bool(body.get("logprobs")) or body.get("logprobs") == 0


def honest(body: dict[str, Any]) -> dict[str, Any]:
    lp = logprobs_for(prompt_of(body))
    text = "".join(lp["tokens"])
    lp_out = lp if wants_logprobs(body) else None
    return {"choices": [{"index": 0, "text": text, "logprobs": lp_out, "finish_reason": "length"}]}


def requantised(body: dict[str, Any]) -> dict[str, Any]:
    lp = logprobs_for(prompt_of(body), shift=-0.4)
    return {"choices": [{"index": 0, "text": "".join(lp["tokens"]), "logprobs": lp}]}


def canned(body: dict[str, Any]) -> dict[str, Any]:
    toks = [" I", " am", " happy", " to"]
    lp = {"tokens": toks, "token_logprobs": [-0.1] * 4, "top_logprobs": [{t: -0.1} for t in toks]}
    return {"choices": [{"index": 0, "text": "".join(toks), "logprobs": lp}]}


def no_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": "whatever", "logprobs": None}]}


def _as_chat(choice: dict[str, Any]) -> dict[str, Any]:
    """A completion choice in chat's shape (``logprobs.content``)."""
    lp = choice.get("logprobs")
    content = None
    if isinstance(lp, dict):
        content = [
            {"token": t, "logprob": v,
             "top_logprobs": [{"token": k, "logprob": x} for k, x in top.items()]}
            for t, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"],
                                 strict=True)
        ]  # fmt: skip
    return {
        "index": 0,
        "message": {"role": "assistant", "content": choice["text"]},
        "logprobs": None if content is None else {"content": content},
        "finish_reason": choice.get("finish_reason", "length"),
    }


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}  # logprobs_for's


STREAM_PIECES = "_stream_pieces"
"""An answer function's own key (never sent): the text pieces a node's engine produced,
one a generated token (``tests/registry/test_canary_sampled.py``'s sim nodes), streamed
one chunk a piece as a node streams them (``node/app.py``: one SSE event a delta)."""


def _sse(
    node_id: str,
    model: str,
    chat: bool,
    text: str,
    usage: dict[str, int] | None = None,
    pieces: list[str] | None = None,
    finish_reason: str = "length",
) -> bytes:
    """``text`` streamed as a node streams it (no log-probabilities): one chunk a piece of
    ``pieces`` where given (a node's engine's tokens), else a few characters a chunk;
    ``usage`` (default :data:`USAGE`) in the final chunk."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    base = {"id": "cmpl-1", "object": obj, "created": 1, "model": model}
    if pieces is None:
        pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    out = []
    for p in pieces:
        choice = {"index": 0, "delta": {"content": p}} if chat else {"index": 0, "text": p}
        out.append({**base, "choices": [choice]})
    end = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
    out.append({**base, "choices": [{**end, "finish_reason": finish_reason}]})
    out.append({**base, "choices": [], "usage": usage or USAGE,
                "mesh": {"node_id": node_id}})  # fmt: skip
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in out) + (
        b"data: [DONE]\n\n"
    )


class LogprobNodes(FakeNodes):
    """Fake nodes whose completions come from an :data:`Answer` function per node, on
    both endpoints, streamed or not (a stream carries the text only, as nodes' do: one
    chunk a token where the function gives them, :data:`STREAM_PIECES`); the answer's
    ``usage`` is :data:`USAGE` unless the function states its own."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Answer] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        node = self.nodes.get(f"{request.url.host}:{request.url.port}")
        paths = ("/v1/completions", "/v1/chat/completions")
        if node is not None and request.url.path in paths:
            body = json.loads(request.content)
            node.calls.append(
                {"path": request.url.path, "body": body, "headers": request.headers,
                 "raw": request.content}
            )  # fmt: skip
            chat = request.url.path == "/v1/chat/completions"
            data = self.answers.get(node.node_id, honest)(body)
            pieces = data.pop(STREAM_PIECES, None)
            if body.get("stream"):
                choice = data["choices"][0]
                content = _sse(node.node_id, body["model"], chat, choice["text"],
                               data.get("usage"), pieces,
                               choice.get("finish_reason") or "length")  # fmt: skip
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=content
                )
            if chat:
                data["choices"] = [_as_chat(data["choices"][0])]
            kind = "chat.completion" if chat else "text_completion"
            data.update(id="cmpl-1", object=kind, model=body["model"])
            data.setdefault("usage", USAGE)
            data["mesh"] = {"node_id": node.node_id}
            return httpx.Response(200, json=data)
        return super().handler(request)


async def register(
    h: Harness, node_id: str, answer: Answer = honest, sha: str | None = SHA
) -> FakeNode:
    nodes = h.nodes
    assert isinstance(nodes, LogprobNodes)
    node = nodes.add(node_id)
    nodes.answers[node_id] = answer
    reg = {
        "node_id": node_id,
        "url": f"http://{node_id}:8801",
        "models": [{"id": MODEL, "engine": "llama-cpp", "sha256": sha}],
        "max_concurrency": 2,
    }
    r = await h.client.post("/mesh/nodes", json=reg)
    assert r.status_code == 200, r.text
    return node


@pytest.fixture
async def mesh(tmp_path: Path) -> Any:
    async with running(tmp_path, nodes=LogprobNodes()) as h:
        yield h


def prober(h: Harness) -> CanaryProber:
    p = h.app.state.canary
    assert isinstance(p, CanaryProber)
    return p


async def trust(h: Harness, node_id: str) -> None:
    q = h.runtime.quality
    assert q is not None
    await q.trust(node_id)


async def run_round(h: Harness, **params: str) -> list[dict[str, Any]]:
    r = await h.client.post("/mesh/canary/run", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def an_hour_later(quality: Quality) -> None:
    """Quality control's wall clock an hour on: the public sees the tally of the hour
    before (``core/canary_publish.py``)."""
    later = quality.now() + timedelta(hours=1)
    quality.now = lambda: later
    quality.changes += 1  # GET /mesh/nodes is built again


async def nodes_view(h: Harness) -> dict[str, dict[str, Any]]:
    r = await h.client.get("/mesh/nodes")
    return {n["node_id"]: n for n in r.json()["nodes"]}


async def test_no_verifier_means_unverified_and_nobody_is_flagged(mesh: Harness) -> None:
    await register(mesh, "node-a", canned)
    results = await run_round(mesh)
    assert [(r["node_id"], r["verdict"]) for r in results] == [("node-a", "unverified")]
    assert results[0]["detail"] == "no verifier hosts this file"
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


async def test_quarantined_node_leaves_routing_for_that_model_and_clear_brings_it_back(
    mesh: Harness,
) -> None:
    await register(mesh, "verifier")
    await register(mesh, "liar", canned)
    await trust(mesh, "verifier")
    await run_round(mesh, node="liar")
    mesh.nodes.nodes["liar:8801"].calls.clear()
    for _ in range(20):
        r = await mesh.client.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
        assert r.status_code == 200
        assert r.json()["mesh"]["node_id"] == "verifier"
    assert mesh.nodes.nodes["liar:8801"].calls == []
    only_liar = {"model": MODEL, "prompt": "x", "allow_nodes": ["liar"]}
    r = await mesh.client.post("/v1/completions", json=only_liar)
    assert r.status_code == 503
    q = mesh.runtime.quality
    assert q is not None
    assert await q.clear("liar") == [MODEL]
    r = await mesh.client.post("/v1/completions", json=only_liar)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "liar"


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


async def test_streamed_probes_judge_the_text(mesh: Harness) -> None:
    """A stream has no log-probabilities: the text must be the reference's greedy text;
    a node lying only to streams is caught, whitespace differences are no lie."""
    await register(mesh, "verifier")
    await register(mesh, "honest")

    def spaced(body: dict[str, Any]) -> dict[str, Any]:
        out = honest(body)
        out["choices"][0]["text"] = "  " + out["choices"][0]["text"].replace(" ", "\n ")
        return out

    def stream_liar(body: dict[str, Any]) -> dict[str, Any]:
        return canned(body) if body.get("stream") else honest(body)

    await register(mesh, "spaced", spaced)
    await register(mesh, "liar", stream_liar)
    await trust(mesh, "verifier")
    p = prober(mesh)
    for path in ("/v1/completions", CHAT_PATH):
        shape = Shape(path=path, stream=True, max_tokens=20)
        assert (await p.probe("honest", MODEL, "def f():", shape)).verdict == "pass"
        assert (await p.probe("spaced", MODEL, "def f():", shape)).verdict == "pass"
    bad = await p.probe("liar", MODEL, "def f():", Shape(stream=True))
    assert bad.verdict == "fail" and bad.detail.startswith("stream_text"), bad
    assert bad.quarantined


async def test_a_node_lying_only_to_requests_without_logprobs_is_caught(mesh: Harness) -> None:
    """probe33: honest to streams and to every request with ``logprobs``, canned text to
    every non-streamed request without them (most users' non-streamed requests): every
    non-streamed probe asked for ``logprobs``, so it passed every probe (it failed before:
    40 of 40). Now a share asks none and its text is judged as a stream's; an honest node
    passes that shape on both endpoints, its ``usage`` held to the reference's entries."""
    await register(mesh, "verifier")
    await register(mesh, "honest")

    def bare_liar(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("stream") or wants_logprobs(body):
            return honest(body)
        out = canned(body)
        out["choices"][0]["logprobs"] = None
        return out

    await register(mesh, "liar", bare_liar)
    await trust(mesh, "verifier")
    p = prober(mesh)
    for path in ("/v1/completions", CHAT_PATH):
        shape = Shape(path=path, max_tokens=20, logprobs=False)
        ok = await p.probe("honest", MODEL, "def f():", shape)
        assert ok.verdict == "pass" and ok.detail.startswith("text_match"), ok
    p.mix = replace(DEFAULT_MIX, stream_share=0.0, sampled_share=0.0)
    out = []
    for seed in range(40):
        p.rng = random.Random(seed)
        out.append(await p.probe("liar", MODEL))
        if out[-1].verdict == "fail":
            break
    bad = out[-1]
    assert bad.verdict == "fail" and bad.detail.startswith("stream_text"), (len(out), bad)
    assert bad.quarantined


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
    assert results["other-file"]["detail"] == "no verifier hosts this file"
    # found 2026-12-05 (`registry canary run` of two sim nodes, one trusted): "no verifier
    # hosts this file" beside a verifier of the model; what is missing is the node's sha256
    assert results["no-sha"]["detail"].startswith("the node declares no sha256 for this file")


async def test_canary_run_needs_the_admin_key(mesh: Harness) -> None:
    r = await mesh.client.post("/mesh/canary/run")
    assert r.status_code == 401
    r = await mesh.client.post("/mesh/canary/run", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_trusted_only_routes_to_trusted_nodes(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "proven")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    # nobody has passed a canary yet: only the verifier, the admin's reference, is trusted
    # (until 2026-12-07 this was a 503: a verifier scored as unverified, user41b)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "verifier"
    await run_round(mesh, node="proven")
    seen = set()
    for _ in range(20):
        r = await mesh.client.post("/v1/completions", json=body)
        assert r.status_code == 200
        seen.add(r.json()["mesh"]["node_id"])
    assert seen <= {"verifier", "proven"} and "proven" in seen  # never "new"
    bad = await mesh.client.post("/v1/completions", json={**body, "trusted_only": "yes"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "trusted_only"
    # the extension is stripped before forwarding
    node = mesh.nodes.nodes["proven:8801"]
    assert "trusted_only" not in node.calls[-1]["body"]


async def test_trusted_only_from_the_api_key(mesh: Harness) -> None:
    from LLM_Mesh.registry.api_keys import create_api_key

    await register(mesh, "verifier")
    await register(mesh, "proven")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    await run_round(mesh, node="proven")
    made = await create_api_key(mesh.store, name="careful", trusted_only=True)
    assert made is not None
    key, rec = made
    assert (await mesh.store.api_key_by_hash(rec.key_hash)).trusted_only  # type: ignore[union-attr]
    from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym

    ledger = mesh.runtime.ledger
    assert ledger is not None  # a keyed user pays (settlement): grant it a balance first
    await ledger.append([Transfer("grant", MINT, pseudonym("user", rec.key_id), 10_000_000)])
    auth = {"Authorization": f"Bearer {key}"}
    for _ in range(15):
        r = await mesh.client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "x"}, headers=auth
        )
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] in {"proven", "verifier"}


async def test_watcher_applies_quarantines_and_clears_made_elsewhere(mesh: Harness) -> None:
    from datetime import datetime, timezone

    await register(mesh, "a")
    await register(mesh, "b")
    q = mesh.runtime.quality
    assert q is not None
    watcher = QualityWatcher(q)
    now = datetime.now(timezone.utc)
    await mesh.store.record_canary("a", MODEL, ok=False, reason="canary: token at 0", at=now)
    await mesh.store.trust_verifier("b", now)
    await watcher.poll()
    assert q.quarantined("a", MODEL) and "b" in q.verifiers
    assert mesh.runtime.routing.quarantined == {"a": frozenset({MODEL})}
    await mesh.store.clear_quarantine("a", now)
    await watcher.poll()
    assert not q.quarantined("a", MODEL) and mesh.runtime.routing.quarantined == {}


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


async def test_a_stale_poll_does_not_undo_a_newer_verdict(mesh: Harness) -> None:
    from dataclasses import replace
    from datetime import timedelta

    await register(mesh, "verifier")
    await register(mesh, "liar", canned)
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    before = (await mesh.store.canary_records()) or []
    await run_round(mesh, node="liar")
    assert q.quarantined("liar", MODEL)
    rec = q.records["liar"][MODEL]
    assert rec.updated_at is not None
    # what a poll that read the store just before the verdict would bring back
    stale = replace(rec, quarantined_at=None, reason=None, failed=0)
    stale.updated_at = rec.updated_at - timedelta(seconds=1)
    q.apply(stale)
    assert q.quarantined("liar", MODEL) and mesh.runtime.routing.quarantined
    assert before == []


async def _entries_by_request(h: Harness) -> dict[str, list[tuple[str, str, str, int]]]:
    rt = h.runtime
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    out: dict[str, list[tuple[str, str, str, int]]] = {}
    for e in entries:
        if e.request_id:
            out.setdefault(e.request_id, []).append(
                (e.kind, e.from_account, e.to_account, e.amount)
            )
    return out


async def test_a_probe_is_paid_like_a_user_request(mesh: Harness) -> None:
    """The same parts, the same entries towards the node's operator, from the same payer
    (the pool, as every request without a key), priced from the catalog; and while the
    node is quarantined (for any model) both are held alike."""
    from LLM_Mesh.core.ledger_entry import NETWORK, POOL

    verifier = await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    prompt = "def f():"
    assert (await prober(mesh).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    probe_id = node.calls[-1]["headers"]["x-request-id"]
    ref_id = verifier.calls[-1]["headers"]["x-request-id"]
    user = await mesh.client.post(
        "/v1/completions", json={**json.loads(prober(mesh).body(MODEL, prompt)),
                                 "allow_nodes": ["node-a"]},
    )  # fmt: skip
    assert user.status_code == 200, user.text
    user_id = user.json()["mesh"]["request_id"]
    paid = await _entries_by_request(mesh)
    probe, by_user = paid[probe_id], paid[user_id]
    assert probe[0][:2] == ("settle", POOL) and probe[0][3] > 0
    assert probe == by_user  # same kinds, payer, operator account and amounts (fee too)
    assert probe[0][2] not in (NETWORK, POOL)
    assert paid[ref_id][0][0] == "settle"  # the verifier is paid for its reference too
    # a quarantine for another model: the node's earnings are held, probes' and users' alike
    q = mesh.runtime.quality
    assert q is not None
    await q.record("node-a", "other-model", ok=False, reason="canary: token")
    assert (await prober(mesh).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    held_probe = node.calls[-1]["headers"]["x-request-id"]
    user = await mesh.client.post(
        "/v1/completions", json={"model": MODEL, "prompt": prompt, "allow_nodes": ["node-a"]}
    )
    paid = await _entries_by_request(mesh)
    held = held_account("node-a")
    held_user = paid[user.json()["mesh"]["request_id"]]
    assert paid[held_probe] == held_user
    assert held_user[0][:3] == ("hold", POOL, held)
    assert [e[0] for e in held_user[1:]] == [e[0] for e in probe[1:]]  # the fee as before


async def test_a_probe_the_pool_cannot_pay_for_is_not_sent(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=LogprobNodes(), pool_daily_budget=1) as h:
        await register(h, "verifier")
        node = await register(h, "node-a")
        await trust(h, "verifier")
        result = await prober(h).probe("node-a", MODEL, prompt="def f():")
        assert result.verdict == "error" and "pool" in result.detail
        assert node.calls == []
        q = h.runtime.quality
        assert q is not None and not q.quarantined("node-a", MODEL)


async def test_trust_earned_on_one_model_does_not_carry_to_an_unverified_one(
    mesh: Harness,
) -> None:
    """A node passes its probes for the model a verifier hosts and also lists a model no
    verifier can check: ``trusted_only`` must not send that model's requests to it on the
    strength of the other's probes (found 2026-12-02: the node's passes for any model made
    it trusted for all of them, so an unverifiable model was served as "trusted")."""
    nodes = mesh.nodes
    assert isinstance(nodes, LogprobNodes)
    await register(mesh, "verifier")
    nodes.add("proven")
    nodes.answers["proven"] = honest
    reg = {
        "node_id": "proven",
        "url": "http://proven:8801",
        "models": [{"id": MODEL, "engine": "llama-cpp", "sha256": SHA},
                   {"id": "my-org/unchecked-7b", "engine": "llama-cpp", "sha256": "b" * 64}],
        "max_concurrency": 2,
    }  # fmt: skip
    assert (await mesh.client.post("/mesh/nodes", json=reg)).status_code == 200
    await trust(mesh, "verifier")
    verdicts = {(r["model"], r["verdict"]) for r in await run_round(mesh, node="proven")}
    assert verdicts == {(MODEL, "pass"), ("my-org/unchecked-7b", "unverified")}
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    # the verifier, the admin's reference for MODEL, is trusted too (since 2026-12-07)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] in {"proven", "verifier"}
    q = mesh.runtime.quality
    assert q is not None and q.trusted_nodes(MODEL) == {"proven", "verifier"}
    assert q.trusted_nodes("my-org/unchecked-7b") == frozenset()
    # (with an API key: the community pool pays for catalog models only)
    r = await mesh.client.post("/v1/completions", json={**body, "model": "my-org/unchecked-7b"},
                               headers=await funded_key(mesh))  # fmt: skip
    assert r.status_code == 503, r.text  # nobody passed a probe for it


def test_stream_text_reads_completion_and_chat_chunks_and_an_error_is_no_verdict() -> None:
    from LLM_Mesh.registry.canary import ProbeError, stream_text

    assert stream_text(_sse("n", MODEL, False, " t1 t2")) == " t1 t2"
    assert stream_text(_sse("n", MODEL, True, " t1 t2")) == " t1 t2"
    broken = b'data: {"choices":[{"index":0,"text":" t1"}]}\n\ndata: {"error":{"message":"x"}}\n\n'
    with pytest.raises(ProbeError):
        stream_text(broken)


@pytest.mark.parametrize("index", [1, -1, "0", None])
def test_a_probe_stream_in_a_choice_not_asked_for_is_no_verdict(index: object) -> None:
    """Found 2026-12-05 (``choiceidx31``): a probe's ``index`` 1 chunks were judged as its
    answer (the gateway now breaks such a stream: ``core/answer_text.choice_fault``)."""
    from LLM_Mesh.registry.canary import ProbeError, stream_text

    chunk = json.dumps({"choices": [{"index": index, "text": " t1"}]})
    with pytest.raises(ProbeError, match="protocol"):
        stream_text(f"data: {chunk}\n\ndata: [DONE]\n\n".encode())
