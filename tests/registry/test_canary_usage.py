"""Canary probes hold a node's ``usage`` to the evidence (``core/canary_usage.py``).

Fake nodes (``tests/registry/canary_mesh.py``'s) answer the model's text and
log-probabilities honestly; an inflating one states one token a UTF-8 byte of its text
+ 16 and its prompt at the estimate's bound (bytes + 8 a message + 16), as the node of
docs/security.md's row "states its token counts at a byte a token" did: a probe fails it,
naming the count, and quarantines it; an honest node passes every shape.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.canary_shape import CHAT_PATH, COMPLETIONS_PATH, Mix, Shape
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    honest,
    prober,
    prompt_of,
    register,
    trust,
)
from tests.registry.helpers import Harness, running


def inflating(body: dict[str, Any]) -> dict[str, Any]:
    """The model's honest text and log-probabilities; counts at a byte a token."""
    out = honest(body)
    text = out["choices"][0]["text"]
    messages = body.get("messages") or [{"content": prompt_of(body)}]
    prompt = sum(len(str(m["content"]).encode()) + 8 for m in messages) + 16
    completion = len(text.encode()) + 16
    out["usage"] = {
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }  # fmt: skip
    return out


def inflating_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Honest but for the completion count: a byte a token + 16."""
    out = honest(body)
    out["usage"] = {"prompt_tokens": 3, "completion_tokens": 40, "total_tokens": 43}
    return out


def inflating_prompt(body: dict[str, Any]) -> dict[str, Any]:
    """Honest but for the prompt count (the verifier states 3)."""
    out = honest(body)
    out["usage"] = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    return out


def an_end_token(body: dict[str, Any]) -> dict[str, Any]:
    """An honest engine that counts the end-of-generation token and renders the template a
    token longer than the verifier's engine: within the slack."""
    out = honest(body)
    out["usage"] = {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    return out


def padding(body: dict[str, Any]) -> dict[str, Any]:
    """The model's honest text and one newline more, with counts at a byte a token (as
    :func:`inflating`): the newline made its text no evidence of a count before canary34."""
    out = inflating(body)
    out["choices"][0]["text"] += "\n"
    out["usage"]["completion_tokens"] += 1
    out["usage"]["total_tokens"] += 1
    return out


def honest_newlines(body: dict[str, Any]) -> dict[str, Any]:
    """An honest engine that ran past the reference in newlines alone, one token each (as
    the real gemma-3-270m did in the e2e): every newline a token, counted."""
    out = honest(body)
    out["choices"][0]["text"] += "\n" * 40
    out["usage"] = {"prompt_tokens": 3, "completion_tokens": 4 + 40 + 1, "total_tokens": 48}
    return out


def half_again(body: dict[str, Any]) -> dict[str, Any]:
    """The model's honest text and log-probabilities; its completion count half again its
    tokens and the end token (4 + 2 + 1): below the bound of every whitespace byte a token
    (8 + 2), above the reference's tokens (4 + 2)."""
    out = honest(body)
    out["usage"] = {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
    return out


def near_ties(body: dict[str, Any]) -> dict[str, Any]:
    """The verifier of a model where a lone space, ``" "``, is within a nat of each of its
    tokens ``" tA"`` (listed second): an honest greedy node may split it off."""
    out = honest(body)
    lp = out["choices"][0]["logprobs"]
    if lp is not None:
        pairs = zip(lp["top_logprobs"], lp["token_logprobs"], strict=True)
        lp["top_logprobs"] = [{**top, " ": v - 1.0} for top, v in pairs]
    return out


def honest_finer(body: dict[str, Any]) -> dict[str, Any]:
    """An honest engine that spells each of the reference's ``" tA"`` as ``" "``, ``"tA"``
    and ran on in newlines, one token each: 8 + 40 + the end token (ws34: held to 46 before,
    canary34 counting only the whitespace past the reference's tokens). A sampled path, or
    a greedy one where the reference shows each split near (:func:`near_ties`)."""
    out = honest(body)
    out["choices"][0]["text"] += "\n" * 40
    out["usage"] = {"prompt_tokens": 3, "completion_tokens": 8 + 40 + 1, "total_tokens": 52}
    return out


@pytest.fixture
async def mesh(tmp_path: Path) -> Any:
    async with running(tmp_path, nodes=LogprobNodes()) as h:
        yield h


@pytest.mark.parametrize("path", [COMPLETIONS_PATH, CHAT_PATH])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_node_stating_a_byte_a_token_is_caught_by_a_probe(
    mesh: Harness, path: str, stream: bool
) -> None:
    await register(mesh, "verifier")
    await register(mesh, "inflater", inflating)
    await trust(mesh, "verifier")
    shape = Shape(path=path, stream=stream, max_tokens=16)
    result = await prober(mesh).probe("inflater", MODEL, "def f():", shape)
    assert result.verdict == "fail" and result.quarantined, result
    # " tA tB tC tD": 4 tokens, 12-16 bytes: 28-32 stated, at most 4 + 2
    assert result.detail.startswith("usage_completion: "), result.detail
    # a stream: the reference's 4 tokens an honest greedy node emits as they are, no near
    # tie beside them (canary35; ws34 to canary34: its 4 spaces possibly a token each, 8 + 2)
    bound, evidence = 6, "4 log-probability entries"
    if stream:
        bound, evidence = 6, "4 the reference's tokens for that text split at whitespace"
    assert result.detail.endswith(f" completion tokens stated, at most {bound} ({evidence} + 2)")
    q = mesh.runtime.quality
    assert q is not None and q.quarantined("inflater", MODEL)
    assert q.quarantines("inflater")[0].reason == "canary: " + result.detail


async def test_a_node_inflating_only_its_prompt_count_is_caught(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "inflater", inflating_prompt)
    await trust(mesh, "verifier")
    for stream in (False, True):
        shape = Shape(stream=stream, max_tokens=16)
        result = await prober(mesh).probe("inflater", MODEL, "def f():", shape)
        assert result.verdict == "fail", result
        assert result.detail == (
            "usage_prompt: 30 prompt tokens stated, at most 7 (the verifier's 3 + 4)"
        )
        assert mesh.runtime.quality is not None
        await mesh.runtime.quality.clear("inflater")


async def test_a_node_inflating_only_its_completion_count_is_caught(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "inflater", inflating_completion)
    await trust(mesh, "verifier")
    result = await prober(mesh).probe("inflater", MODEL, "def f():", Shape(max_tokens=16))
    assert result.verdict == "fail"
    assert result.detail == (
        "usage_completion: 40 completion tokens stated, at most 6 (4 log-probability entries + 2)"
    )


async def test_honest_counts_pass_every_shape_an_end_token_and_a_template_token_too(
    mesh: Harness,
) -> None:
    await register(mesh, "verifier")
    await register(mesh, "honest")
    await register(mesh, "eos", an_end_token)
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = Mix(stop_share=0.0)  # the fake model's text has no stop string to end at
    for seed in range(24):
        for node in ("honest", "eos"):
            p.rng = random.Random(seed)
            result = await p.probe(node, MODEL)
            assert result.verdict == "pass", result


@pytest.mark.parametrize("path", [COMPLETIONS_PATH, CHAT_PATH])
@pytest.mark.parametrize("logprobs", [False, True])
async def test_a_text_padded_with_whitespace_is_held_to_a_count(
    mesh: Harness, path: str, logprobs: bool
) -> None:
    """Found 2026-12-06, canary34: a text-only answer (a stream, or no ``logprobs`` asked)
    with more whitespace than the reference's counted tokens hold was no evidence of a
    count (``covering_entries`` gave ``None``), so a node adding one newline to its honest
    text stated a byte a token and passed. Each whitespace character past them is now at
    most one token: 4 entries + 1 + 2, not ~30. An honest engine that ran on in newlines,
    one token each, passes. Since ws34 every whitespace character of the text may be a token
    of its own (an honest engine may split the reference's whitespace more finely): the
    padder is held to 4 + 5 + 2, and an honest engine splitting ``" tA"`` passes."""
    await register(mesh, "verifier")
    await register(mesh, "padder", padding)
    await register(mesh, "newlines", honest_newlines)
    await register(mesh, "finer", honest_finer)
    await trust(mesh, "verifier")
    p = prober(mesh)
    for stream in (True, False):
        shape = Shape(path=path, stream=stream, max_tokens=None, logprobs=logprobs)
        if not shape.text_only:
            continue
        result = await p.probe("padder", MODEL, "def f():", shape)
        assert result.verdict == "fail", result
        assert result.detail.startswith("usage_completion: "), result.detail
        assert result.detail.endswith(
            " completion tokens stated, at most 7"
            " (5 the reference's tokens for that text split at whitespace + 2)"
        ), result.detail
        assert mesh.runtime.quality is not None
        await mesh.runtime.quality.clear("padder")
        result = await p.probe("newlines", MODEL, "def f():", shape)
        assert result.verdict == "pass", result


@pytest.mark.parametrize("path", [COMPLETIONS_PATH, CHAT_PATH])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_node_stating_half_again_its_tokens_on_text_only_answers_is_caught(
    mesh: Harness, path: str, stream: bool
) -> None:
    """canary35: a text-only answer's count was held to a token each piece of its text and
    each whitespace byte (ws34), 1.48-1.75 times its true tokens on gemma-3-270m's, so a
    node stating half again its tokens passed (it failed before: 7 within 8 + 2). A greedy
    probe's reference tokens with no near tie that spells the text otherwise are emitted as
    they are by an honest node: 4 + 2."""
    await register(mesh, "verifier")
    await register(mesh, "liar", half_again)
    await trust(mesh, "verifier")
    shape = Shape(path=path, stream=stream, max_tokens=16, logprobs=False)
    result = await prober(mesh).probe("liar", MODEL, "def f():", shape)
    assert result.verdict == "fail" and result.quarantined, result
    assert result.detail == (
        "usage_completion: 7 completion tokens stated, at most 6"
        " (4 the reference's tokens for that text split at whitespace + 2)"
    )


@pytest.mark.parametrize(
    ("verifier", "temperature", "ok"),
    [(honest, 0.7, True), (near_ties, 0.0, True), (honest, 0.0, False)],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_an_honest_node_splitting_whitespace_where_it_may_passes(
    mesh: Harness, stream: bool, verifier: Any, temperature: float, ok: bool
) -> None:
    """ws34's honest engine splitting ``" tA"`` as ``" "``, ``"tA"`` (and running on in
    newlines) passes where an honest engine may take that path: sampled (any token may be
    drawn), or greedy where the reference shows ``" "`` near (no sure token: unverified, its
    count within). Greedy beside no such tie (``" tA"`` 3 nats above all else) it is not the
    model's path: since canary35 held to the reference's tokens, 4 + 40 + 2."""
    await register(mesh, "verifier", verifier)
    await register(mesh, "finer", honest_finer)
    await trust(mesh, "verifier")
    shape = Shape(stream=stream, max_tokens=None, logprobs=False, temperature=temperature)
    result = await prober(mesh).probe("finer", MODEL, "def f():", shape)
    if ok:
        assert result.verdict in ("pass", "unverified"), result
        assert not result.quarantined
    else:
        assert result.detail == (
            "usage_completion: 49 completion tokens stated, at most 46"
            " (44 the reference's tokens for that text split at whitespace + 2)"
        ), result
