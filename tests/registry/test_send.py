"""The send stage: a node's 503 (paused, draining, no memory for a cold model) is a
refusal like 429, not a server error; the client sees the soonest Retry-After."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.helpers import FakeNode, FakeNodes, rank, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **kw}


async def test_503_is_a_refusal_no_ejection_no_retry_budget(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        paused = await h.register("paused", behavior="503")
        await h.register("good")
        routing = h.runtime.routing
        rank(routing.router, ["paused", "good"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "good" and r.json()["mesh"]["attempts"] == 2
        assert len(paused.calls) == 1
        assert not routing.router.outliers.is_ejected("paused")  # it did nothing wrong
        assert routing.retry_budget.retries_in_window == 0  # a failover, not a retry
        assert routing.failover_budget.retries_in_window == 1
        st = routing.router.node("paused")
        assert st is not None and st.success.value == 1.0  # no failure recorded


async def test_every_node_refusing_gives_503_with_the_soonest_retry_after(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        late = await h.register("late", behavior="503")
        soon = await h.register("soon", behavior="503")
        late.retry_after, soon.retry_after = "30", "7"
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "7"
        err = r.json()["error"]
        assert err["code"] == "model_unavailable" and err["attempts"] == 2
        assert err["node_id"] in ("late", "soon") and err["retry_after"] == 7
        assert len(late.calls) == len(soon.calls) == 1
        assert h.runtime.routing.retry_budget.retries_in_window == 0


async def test_a_503_node_cannot_use_up_the_attempts_meant_for_work(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=1) as h:
        await h.register("draining", behavior="503")
        await h.register("good")
        rank(h.runtime.routing.router, ["draining", "good"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "good"


async def test_a_refusing_nodes_retry_after_holds_it_in_the_router(tmp_path: Path) -> None:
    """The node's own Retry-After reaches the Router: the next request is told to wait that
    long by the gateway itself, without calling the node again."""
    async with running(tmp_path) as h:
        busy = await h.register("busy", behavior="429")
        busy.retry_after = "30"
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429, r.text
        assert len(busy.calls) == 1
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 29  # the gateway's own estimate, not 1
        assert len(busy.calls) == 1  # held out: not asked again


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("behavior", ["connect_error", "timeout", "protocol"])
async def test_a_failed_nodes_address_is_not_shown_to_the_client(
    tmp_path: Path, behavior: str, stream: bool
) -> None:
    """A node's URL is its operator's address on the internet (docs/security.md, "Public
    listings"): a client whose request failed on it learns its id, never its URL (nor a
    transport error's text, which names it: aiohttp's ``Cannot connect to host …``)."""
    async with running(tmp_path) as h:
        node = await h.register("node-a", behavior="ok" if behavior == "protocol" else behavior)

        def broken(n: FakeNode) -> None:
            raise httpx.RemoteProtocolError(f"{n.url} closed the connection")

        if behavior == "protocol":
            h.nodes.on_call = broken
        r = await h.client.post(CHAT, json=chat(stream=stream))
        assert r.status_code in (502, 504), r.text
        assert r.json()["error"]["node_id"] == "node-a"
        assert node.url not in r.text and ":8801" not in r.text, r.text


FUNDS = 10_000
ANSWER = "The quick brown fox jumps over the lazy dog."  # 44 characters, 44 bytes


class NoUsageNodes(FakeNodes):
    """Nodes of another make: a non-streamed answer with its text and no ``usage``."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if resp.status_code != 200 or json.loads(request.content).get("stream"):
            return resp
        data = resp.json()
        data["choices"][0]["message"]["content"] = ANSWER
        del data["usage"]
        return httpx.Response(200, json=data)


async def test_a_non_stream_answer_without_usage_is_paid_on_the_gateways_count(
    tmp_path: Path,
) -> None:
    """A node answers 200 with its choices but no ``usage`` (its receipt part ``missing``):
    paid, as a stream without its usage chunk is, on the gateway's count: the answer's text
    at the usual count (``core/delivered.usual_completion``: ⌈characters / 3⌉) and the
    prompt once at its usual count, within the estimate (found 2026-12-04: charged 0, paid
    0, its record said 0 tokens)."""
    from LLM_Mesh.cli.ledger_commands import StoreSource, audit
    from LLM_Mesh.cli.receipt_commands import check
    from LLM_Mesh.core.pricing import estimate, request_cost
    from LLM_Mesh.core.receipt import PartStatus
    from tests.keyed import operator_account
    from tests.registry.test_charge import BODY, CHAT, PRICE, PROMPT, bearer, new_user
    from tests.registry.test_charge import register as register_paid
    from tests.registry.test_paid_once import _settled
    from tests.registry.test_receipts import registry_keys

    async with running(tmp_path, nodes=NoUsageNodes()) as h:
        await register_paid(h, "a", "alice")
        key, account = await new_user(h, FUNDS)
        r = await h.client.post(CHAT, json={**BODY, "max_tokens": 100}, headers=bearer(key))
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["choices"][0]["message"]["content"] == ANSWER
        completion = -(-len(ANSWER) // 3)  # 15
        cost = request_cost(PRICE, PROMPT, completion)
        assert 0 < cost <= estimate(PRICE, "hi", 100, 32_768, 1)
        mesh = answer["mesh"]
        assert (mesh["prompt_tokens"], mesh["completion_tokens"], mesh["cost"]) == (
            PROMPT, completion, cost,
        )  # fmt: skip
        checked = check(r.text, await registry_keys(h))  # verifies offline, shown unsigned
        assert [p.status for p in checked.parts] == [PartStatus.MISSING]
        assert checked.completion_tokens == completion
        s = h.runtime.settlement
        assert s is not None
        fee = cost * 5 // 100
        assert await _settled(s, account, (FUNDS - cost, 0)) == (FUNDS - cost, 0)
        assert await s.balance(operator_account("alice")) == (cost - fee, 0)
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert (rec.prompt_tokens, rec.completion_tokens, rec.cost) == (PROMPT, completion, cost)
        ledger = h.runtime.ledger
        assert ledger is not None
        report = await audit(StoreSource(ledger, h.settings.ledger_origin))
        assert report.ok, report.findings


async def test_a_whole_answers_audit_cap_is_its_bytes_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usage audit's cap of a whole answer is its text's UTF-8 bytes + the slack of a
    choice and of its longest ``stop`` (``core/delivered.completion_cap``), from the one
    count of those bytes the send stage makes (perf38: the account stage counted them a
    second time, ~10 µs of the gateway's CPU a request)."""
    import LLM_Mesh.registry.account as account
    import LLM_Mesh.registry.send as send
    from LLM_Mesh.core.delivered import SLACK_PER_CHOICE, answer_bytes
    from LLM_Mesh.registry.job import Job, Tally

    counts: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> int:
        counts.append(answer_bytes(*args, **kwargs))
        return counts[-1]

    monkeypatch.setattr(send, "answer_bytes", counted)
    monkeypatch.setattr(account, "answer_bytes", counted)
    seen: list[tuple[int, int]] = []

    class Audit:
        def answered(self, job: Job, tally: Tally) -> None:
            seen.append((tally.completion_cap, tally.completion_tokens))

    async with running(tmp_path) as h:
        await h.register("a")
        h.runtime.usage_audit = Audit()  # type: ignore[assignment]
        r = await h.client.post(CHAT, json=chat(stop=["STOP!", "ab"]))
        assert r.status_code == 200, r.text
        text = r.json()["choices"][0]["message"]["content"]
        assert counts == [len(text.encode())]  # counted once
        assert seen == [(len(text.encode()) + SLACK_PER_CHOICE + len("STOP!"), 5)]
