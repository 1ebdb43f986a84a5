"""Canary probes that stream: the text judged, completion and chat chunks read, an error or a
choice not asked for is no verdict, and a node lying only to requests without logprobs."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Shape
from tests.registry.canary_mesh import (
    MODEL,
    canned,
    honest,
    mesh,
    prober,
    register,
    sse,
    trust,
    wants_logprobs,
)
from tests.registry.helpers import Harness

__all__ = ["mesh"]  # the fixture


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


def test_stream_text_reads_completion_and_chat_chunks_and_an_error_is_no_verdict() -> None:
    from LLM_Mesh.registry.canary import ProbeError, stream_text

    assert stream_text(sse("n", MODEL, False, " t1 t2")) == " t1 t2"
    assert stream_text(sse("n", MODEL, True, " t1 t2")) == " t1 t2"
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
