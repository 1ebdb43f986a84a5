"""A node is paid (and its payer charged) at most for the text it delivered: a node that
answers "Hi" and reports ``max_tokens`` completion tokens is priced for the bytes relayed
plus the slack (``core/delivered.py``), through the real gateway; its receipt keeps its
own (signed) counts, so it stays ``signed`` and verifies offline; the books balance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.delivered import SLACK_PER_CHOICE
from LLM_Mesh.core.ledger_entry import NETWORK, POOL
from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.core.receipt import PartStatus
from tests.keyed import operator_account
from tests.registry.helpers import FakeNode, FakeNodes, Harness, running, sse_chunks
from tests.registry.test_charge import bearer, new_user, settled, settlement
from tests.registry.test_midstream import Dies, _first_is, completion_chunks
from tests.registry.test_receipts import MODEL, SigningNodes, registry_keys

CHAT = "/v1/chat/completions"
SPEC = get_spec(MODEL)
assert SPEC is not None
PRICE = SPEC.price
CLAIMED = 400  # the node's usage: max_tokens
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": CLAIMED}
CAPPED = len("Hi") + SLACK_PER_CHOICE  # 18: what it delivered, plus the slack


def _inflated_sse(model: str, node_id: str, words: list[str], claimed: int) -> bytes:
    """``sse_chunks`` with its final chunk's usage saying ``claimed`` completion tokens."""
    events = sse_chunks(model, node_id, words)
    final = json.loads(events[-2][len(b"data: ") :])
    final["usage"]["completion_tokens"] = claimed
    events[-2] = b"data: " + json.dumps(final).encode() + b"\n\n"
    return b"".join(events)


class InflatingFakes(FakeNodes):
    """Fake nodes that answer "Hi" and report :data:`CLAIMED` completion tokens."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != CHAT or resp.status_code != 200:
            return resp
        node = self.nodes[f"{request.url.host}:{request.url.port}"]
        if json.loads(request.content).get("stream"):
            sse = _inflated_sse(MODEL, node.node_id, ["Hi"], CLAIMED)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)
        data = resp.json()
        data["choices"][0]["message"]["content"] = "Hi"
        data["usage"]["completion_tokens"] = CLAIMED
        data["usage"]["total_tokens"] = data["usage"]["prompt_tokens"] + CLAIMED
        return httpx.Response(200, json=data)


class InflatingSigners(SigningNodes, InflatingFakes):
    """... that sign what they claim (their receipt is their key's word on it)."""


async def _books_balance(h: Harness) -> None:
    ledger = h.runtime.ledger
    assert ledger is not None
    report = await audit(StoreSource(ledger, h.settings.ledger_origin))
    assert report.ok, report.findings


def _final_chunk(text: str) -> dict[str, Any]:
    return [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")][-1]


async def _paid_only_the_capped_count(
    h: Harness, nodes: SigningNodes, stream: bool, extra: dict[str, Any] | None = None,
    capped: int = CAPPED,
) -> None:  # fmt: skip
    node_id = nodes.new()
    await h.register(node_id)
    settlement(h).note_operator(node_id, "mallory")
    key, account = await new_user(h, 100_000)
    body = {**BODY, **(extra or {}), "stream": stream}
    r = await h.client.post(CHAT, json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    answer = _final_chunk(r.text) if stream else r.json()
    mesh, usage = answer["mesh"], answer["usage"]
    cost = request_cost(PRICE, usage["prompt_tokens"], capped)
    assert cost < request_cost(PRICE, usage["prompt_tokens"], CLAIMED)
    # the client is shown what it is charged; the node's usage is passed on as its word
    assert (mesh["completion_tokens"], mesh["cost"]) == (capped, cost)
    assert usage["completion_tokens"] == CLAIMED
    # its receipt keeps the node's signed counts: signed, and it verifies offline
    checked = check(r.text, await registry_keys(h), require_signed=True)
    assert checked.completion_tokens == CLAIMED
    assert [p.status for p in checked.parts] == [PartStatus.SIGNED]
    s = settlement(h)
    await settled(s)
    assert await s.balance(account) == (100_000 - cost, 0)
    earned = (await s.balance(operator_account("mallory")))[0]
    assert earned + (await s.balance(NETWORK))[0] == cost
    await _books_balance(h)


async def test_a_node_reporting_max_tokens_for_hi_is_paid_the_bytes_plus_slack(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, nodes=InflatingSigners()) as h:
        await _paid_only_the_capped_count(h, h.nodes, stream=False)  # type: ignore[arg-type]


async def test_a_stream_reporting_max_tokens_for_hi_is_paid_the_bytes_plus_slack(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, nodes=InflatingSigners()) as h:
        await _paid_only_the_capped_count(h, h.nodes, stream=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_requests_longest_stop_string_widens_each_choices_slack(
    tmp_path: Path, stream: bool
) -> None:
    """An engine in front of vLLM or a llama.cpp server counts the tokens of the stop string
    it generated and cut off (up to one a byte): with a 40-byte stop (and a shorter one) the
    cap is the bytes + 16 + 40 (found 2026-12-04, review: 2 + 16, an honest count under-paid)."""
    stops = {"stop": ["\n", "<|END OF THE ANSWER, SAID THE MODEL|>..."]}
    assert len(stops["stop"][1].encode()) == 40
    async with running(tmp_path, nodes=InflatingSigners()) as h:
        nodes: SigningNodes = h.nodes  # type: ignore[assignment]
        await _paid_only_the_capped_count(h, nodes, stream, stops, capped=CAPPED + 40)


async def test_an_honest_answer_is_priced_at_its_own_usage(tmp_path: Path) -> None:
    """A node whose count is within what it delivered (+ slack) is paid its own count."""
    async with running(tmp_path, nodes=SigningNodes()) as h:
        nodes: SigningNodes = h.nodes  # type: ignore[assignment]
        node_id = nodes.new()
        await h.register(node_id)
        for stream in (False, True):
            r = await h.client.post(CHAT, json={**BODY, "stream": stream})
            assert r.status_code == 200, r.text
            answer = _final_chunk(r.text) if stream else r.json()
            usage, mesh = answer["usage"], answer["mesh"]
            assert mesh["completion_tokens"] == usage["completion_tokens"] > 0
            assert mesh["cost"] == request_cost(PRICE, usage["prompt_tokens"],
                                                usage["completion_tokens"])  # fmt: skip


async def test_a_continuing_node_that_inflates_is_paid_its_part_capped(tmp_path: Path) -> None:
    """a dies after two tokens; b continues with two more and reports 300: b's part is
    priced at its bytes + slack, a's at its two tokens; the final usage is the nodes'
    counts (the receipt's), ``mesh`` the counts charged."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "a":
            return httpx.Response(200, headers=sse, stream=Dies(
                completion_chunks("a", model, ["Once", " upon"])[:2]))  # fmt: skip
        chunks = completion_chunks("b", model, [" a", " time"])
        final = json.loads(chunks[-2][len(b"data: ") :])
        final["usage"]["completion_tokens"] = 300
        chunks[-2] = b"data: " + json.dumps(final).encode() + b"\n\n"
        return httpx.Response(200, headers=sse, content=b"".join(chunks))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        for node_id, operator in (("a", "alice"), ("b", "bob")):
            await h.register(node_id, models=[MODEL])
            settlement(h).note_operator(node_id, operator)
        s = settlement(h)
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 400}
        text = await _first_is(h, "a", "b", body, "/v1/completions")
        final = _final_chunk(text)
        b_priced = len(" a time") + SLACK_PER_CHOICE  # 23, not 300
        assert final["usage"]["completion_tokens"] == 2 + 300  # the nodes' counts
        assert final["mesh"]["completion_tokens"] == 2 + b_priced
        prompt = final["usage"]["prompt_tokens"]
        a_cost, b_cost = request_cost(PRICE, 0, 2), request_cost(PRICE, prompt, b_priced)
        assert final["mesh"]["cost"] == a_cost + b_cost
        keys = await registry_keys(h)
        assert check(text, keys).completion_tokens == 302  # verifies: usage = receipt
        await settled(s)
        budget = h.settings.pool_daily_budget
        assert await s.balance(POOL) == (budget - a_cost - b_cost, 0)
        bob = (await s.balance(operator_account("bob")))[0]
        assert b_cost - 1 - b_cost // 20 <= bob < b_cost  # its part less the fee (rounded up)
        await _books_balance(h)


class PromptInflatingFakes(FakeNodes):
    """Fake nodes that report a million prompt tokens for a two-letter prompt: paid at most
    for the completion they delivered, a node could claim the prompt instead."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != CHAT or resp.status_code != 200:
            return resp
        if json.loads(request.content).get("stream"):
            events = resp.content.split(b"\n\n")
            for i, e in enumerate(events):
                if e.startswith(b"data: {") and b'"usage"' in e:
                    final = json.loads(e[len(b"data: ") :])
                    if final.get("usage") and not final.get("choices"):
                        final["usage"]["prompt_tokens"] = 10**6
                        events[i] = b"data: " + json.dumps(final).encode()
            sse = b"\n\n".join(events)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)
        data = resp.json()
        data["usage"]["prompt_tokens"] = 10**6
        return httpx.Response(200, json=data)


class PromptInflatingSigners(SigningNodes, PromptInflatingFakes):
    """... that sign what they claim (their receipt is their key's word on it)."""


async def _paid_at_most_the_prompt_bound(h: Harness, nodes: SigningNodes, stream: bool) -> None:
    from LLM_Mesh.core.pricing import estimate_prompt_tokens

    node_id = nodes.new()
    await h.register(node_id)
    settlement(h).note_operator(node_id, "mallory")
    key, account = await new_user(h, 10**9)
    body = {**BODY, "max_tokens": 8, "stream": stream}
    r = await h.client.post(CHAT, json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    answer = _final_chunk(r.text) if stream else r.json()
    mesh = answer["mesh"]
    bound = estimate_prompt_tokens("hi", 1)  # the estimate's bound of the prompt: 2 + 8 + 16
    assert mesh["prompt_tokens"] == bound
    assert mesh["cost"] == request_cost(PRICE, bound, mesh["completion_tokens"])
    assert answer["usage"]["prompt_tokens"] == 10**6  # the node's word, passed on
    checked = check(r.text, await registry_keys(h), require_signed=True)
    assert [p.status for p in checked.parts] == [PartStatus.SIGNED]
    s = settlement(h)
    await settled(s)
    assert await s.balance(account) == (10**9 - mesh["cost"], 0)
    await _books_balance(h)


async def test_a_node_claiming_a_huge_prompt_is_paid_at_most_the_prompts_bound(
    tmp_path: Path,
) -> None:
    nodes = PromptInflatingSigners()
    async with running(tmp_path, nodes=nodes) as h:
        await _paid_at_most_the_prompt_bound(h, nodes, stream=False)


async def test_a_stream_claiming_a_huge_prompt_is_paid_at_most_the_prompts_bound(
    tmp_path: Path,
) -> None:
    nodes = PromptInflatingSigners()
    async with running(tmp_path, nodes=nodes) as h:
        await _paid_at_most_the_prompt_bound(h, nodes, stream=True)
