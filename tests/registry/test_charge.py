"""Settlement at the gateway: 402 before any node runs, users pay, operators earn, per part.

The real app with fake nodes (``tests/registry/helpers.py``); ``mistral-7b`` costs 5,000 µNT
per 1,000 prompt tokens and 10,000 per 1,000 completion tokens, the fake nodes answer
10 prompt + 5 completion tokens (100 µNT: 95 to the operator, 5 to ``network`` at 5 %).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.ledger_entry import NETWORK, POOL
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.pricing import estimate, request_cost, usual_prompt_tokens
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.parse import client_ledger_id
from LLM_Mesh.registry.settlement import Settlement, user_account
from tests.keyed import operator_account
from tests.registry.helpers import FakeNode, FakeNodes, Harness, fund, running, sse_chunks
from tests.registry.signing_nodes import MODEL, cut_after_first_token, stalling_nodes
from tests.registry.test_midstream import Dies, _first_is, completion_chunks

CHAT = "/v1/chat/completions"
PRICE = __import__("LLM_Mesh.core.catalog", fromlist=["get_spec"]).get_spec(MODEL).price
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
ESTIMATE = estimate(PRICE, "hi", 5, 32_768, 1)  # "hi": 2 bytes, 1 message
PROMPT = usual_prompt_tokens("hi", 1)  # 22: what a stream cut short is charged for "hi"
COST = request_cost(PRICE, 10, 5)  # what the fake node's usage costs


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_user(h: Harness, amount: int | None) -> tuple[str, str]:
    """An API key and its user's account, granted ``amount`` µNT (None: nothing)."""
    made = await create_api_key(h.store)
    assert made is not None
    account = user_account(made[1].key_id)
    if amount:
        await fund(h, account, amount)
    return made[0], account


def settlement(h: Harness) -> Settlement:
    s = h.runtime.settlement
    assert s is not None
    return s


async def settled(s: Settlement) -> None:
    """Settle what was answered and hand the gateway's reservation leases back: until they
    go back (idle ``settle_lease_idle_s``) they are part of the payer's ``reserved``."""
    await s.flush()
    assert s.give_back(float("inf")) >= 1
    await s.flush()


async def register(h: Harness, node_id: str, operator: str, **kw: Any) -> FakeNode:
    node = await h.register(node_id, models=[MODEL], **kw)
    settlement(h).note_operator(node_id, operator)
    return node


async def test_the_estimate_and_cost_are_what_the_prices_say() -> None:
    assert ESTIMATE == 180 and COST == 100  # (26 x 5000 + 5 x 10000) / 1000; see the docstring


@pytest.mark.parametrize("stream", [False, True])
async def test_a_user_without_enough_balance_gets_402_before_any_node_runs(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, ESTIMATE - 1)
        r = await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=bearer(key))
        assert r.status_code == 402, r.text
        err = r.json()["error"]
        assert err["type"] == "insufficient_balance" and err["code"] == "insufficient_balance"
        assert err["payer"] == "user" and err["estimate"] == ESTIMATE
        assert (err["balance"], err["reserved"], err["available"]) == (ESTIMATE - 1, 0, 179)
        assert "180" in err["message"] and "179" in err["message"]
        assert node.calls == []  # no node ran
        await settlement(h).flush()
        assert await settlement(h).balance(account) == (ESTIMATE - 1, 0)


class ChoicesNodes(FakeNodes):
    """Fake nodes that give the ``n`` choices asked for: each the usual 5 tokens, usage
    summed over them (OpenAI's)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != CHAT or resp.status_code != 200:
            return resp
        n = json.loads(request.content).get("n") or 1
        data = json.loads(resp.content)
        data["choices"] = [{**data["choices"][0], "index": i} for i in range(n)]
        data["usage"]["completion_tokens"] *= n
        data["usage"]["total_tokens"] = sum(
            data["usage"][k] for k in ("prompt_tokens", "completion_tokens")
        )
        return httpx.Response(200, json=data)


async def test_n_choices_reserve_and_pay_for_every_choice(tmp_path: Path) -> None:
    """With ``max_n`` raised, ``n: 3`` may cost three answers: its estimate covers them
    (found 2026-12-03: the estimate ignored ``n``, so a payer with a one-answer estimate got
    three, and the charge, capped at that estimate, paid the node for one and a bit)."""
    three = estimate(PRICE, "hi", 5, 32_768, 1, choices=3)  # (26 x 5000 + 15 x 10000) / 1000
    assert three == 280 > ESTIMATE
    async with running(tmp_path, nodes=ChoicesNodes(), limits=RequestLimits(max_n=3)) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, three - 1)
        r = await h.client.post(CHAT, json={**BODY, "n": 3}, headers=bearer(key))
        assert r.status_code == 402, r.text
        assert r.json()["error"]["estimate"] == three and node.calls == []
        await fund(h, account, 1)
        r = await h.client.post(CHAT, json={**BODY, "n": 3}, headers=bearer(key))
        assert r.status_code == 200, r.text
        assert len(r.json()["choices"]) == 3
        cost = request_cost(PRICE, 10, 15)  # the node's usage: 10 prompt, 3 x 5 completion
        assert r.json()["mesh"]["cost"] == cost == 200
        s = settlement(h)
        await s.flush()
        assert await s.balance(account) == (three - cost, 0)
        assert await s.balance(operator_account("alice")) == (190, 0)


async def test_a_user_pays_the_exact_cost_and_the_operator_earns_it_less_the_fee(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200, r.text
        mesh = r.json()["mesh"]
        assert mesh["cost"] == COST and mesh["currency"] == "micro-NetworkToken"
        s = settlement(h)
        assert await s.balance(account) == (1000, COST)  # answered: held until settled
        await s.flush()
        assert await s.balance(account) == (900, 0)
        assert await s.balance(operator_account("alice")) == (95, 0)
        assert await s.balance(NETWORK) == (5, 0)
        ledger = h.runtime.ledger
        assert ledger is not None
        entries, _ = await ledger.entries(-1, 100)
        paid = [(e.kind, e.from_account, e.to_account, e.amount, e.request_id) for e in entries]
        rid = mesh["request_id"]
        assert paid[-2:] == [
            ("settle", account, operator_account("alice"), 95, rid),
            ("fee", account, NETWORK, 5, rid),
        ]


async def test_the_payment_pays_the_parts_mesh_cost_was_summed_from_priced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's parts are priced once (for ``mesh.cost``) and the payment pays those:
    what the client is told it paid is what the ledger takes."""
    from LLM_Mesh.registry import account

    priced = []
    real = account.payable_parts

    def counted(*a: Any) -> list[tuple[str, int]]:
        priced.append(1)
        return real(*a)

    monkeypatch.setattr(account, "payable_parts", counted)
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account_id = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["cost"] == COST
        assert len(priced) == 1
        assert await settlement(h).balance(account_id) == (1000, COST)


async def test_anonymous_requests_are_paid_by_the_pool_and_402_when_it_is_dry(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, pool_daily_budget=ESTIMATE + COST - 1) as h:
        node = await register(h, "a", "alice")
        s = settlement(h)
        assert await s.balance(POOL) == (ESTIMATE + COST - 1, 0)  # topped up at start
        assert (await h.client.post(CHAT, json=BODY)).status_code == 200
        await s.flush()
        assert await s.balance(POOL) == (ESTIMATE - 1, 0)
        r = await h.client.post(CHAT, json=BODY)
        assert r.status_code == 402, r.text
        err = r.json()["error"]
        assert err["code"] == "community_pool_exhausted" and err["payer"] == "pool"
        assert "community pool" in err["message"] and "00:00 UTC" in err["message"]
        assert len(node.calls) == 1


async def test_a_failed_request_costs_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice", behavior="500")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 502
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 502
        h.nodes.nodes["a:8801"].behavior = "400"  # a node's own refusal passes through
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 400
        # a stream's refusal too: voided by the account stage (account_passthrough), not by
        # the admission's hold, which leaves a stream's payment to its end
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 400
        await settlement(h).flush()
        assert await settlement(h).balance(account) == (1000, 0)
        assert await settlement(h).balance(operator_account("alice")) == (0, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_void_that_cannot_be_written_does_not_change_a_failed_requests_answer(
    tmp_path: Path, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The void of a failed request (its reservation written alone: too little balance for
    a lease) whose write raises (disk I/O) is not the request's error: the client gets the
    failure it would have got (502), and the estimate is released once a write succeeds."""
    from LLM_Mesh.registry import settle_upkeep
    from LLM_Mesh.registry.settle_db import Void

    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02,))
    async with running(tmp_path) as h:
        await register(h, "a", "alice", behavior="500")
        key, account = await new_user(h, 1000)
        s = settlement(h)
        real = s.db.try_inline  # type: ignore[attr-defined]
        broken = [1]

        def once_broken(ops: Any, holder: str, now: Any = None) -> Any:
            if broken and any(isinstance(op, Void) for op in ops):
                broken.pop()
                raise OSError("disk I/O error")
            return real(ops, holder, now)

        s.db.try_inline = once_broken  # type: ignore[attr-defined]
        r = await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=bearer(key))
        assert r.status_code == 502, r.text
        assert not broken  # the void's write did fail
        for _ in range(100):
            if await s.balance(account) == (1000, 0):
                break
            await asyncio.sleep(0.02)
        assert await s.balance(account) == (1000, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_second_opinion_is_paid_like_any_answer_and_the_refusal_costs_nothing(
    tmp_path: Path, stream: bool
) -> None:
    """A node refuses (its own 400), another node answers (the second opinion,
    ``core/failover.py``): the user pays that answer exactly once, to its operator; the
    refusing node did no work and earns nothing."""
    async with running(tmp_path) as h:
        refuser = await register(h, "bad", "mallory", behavior="400")
        await register(h, "good", "alice")
        key, account = await new_user(h, 1000)
        busy = h.runtime.routing.begin("good", MODEL)  # "bad" looks best
        r = await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=bearer(key))
        h.runtime.routing.finish(busy, Outcome.CANCELLED)
        assert r.status_code == 200, r.text  # before: bad's 400
        assert len(refuser.calls) == 1 and r.headers["x-mesh-node"] == "good"
        if stream:
            final = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
            mesh, cost = final[-1]["mesh"], request_cost(PRICE, 4, 3)
        else:
            mesh, cost = r.json()["mesh"], COST
        assert mesh["cost"] == cost and mesh["attempts"] == 2
        await settlement(h).flush()
        fee = -(-cost * 5 // 100)  # rounded up (since 2026-12-06, money34)
        assert await settlement(h).balance(account) == (1000 - cost, 0)
        assert await settlement(h).balance(operator_account("alice")) == (cost - fee, 0)
        assert await settlement(h).balance(operator_account("mallory")) == (0, 0)


async def test_a_stream_pays_before_its_final_chunk(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        final = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")][-1]
        cost = request_cost(PRICE, 4, 3)  # sse_chunks' usage: 4 prompt, 3 completion
        assert final["mesh"]["cost"] == cost
        await settlement(h).flush()
        assert await settlement(h).balance(account) == (1000 - cost, 0)


async def test_a_stream_cut_short_pays_only_what_was_delivered(tmp_path: Path) -> None:
    """The node dies after two tokens and nobody can continue a chat: the user pays for
    the two tokens delivered and the prompt the node processed (its count never came: the
    estimate's count), the node is paid for them."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=sse, stream=Dies(sse_chunks(model, "a", ["x", "y"])[:3]))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and '"error"' in r.text
        await settlement(h).flush()
        cost = request_cost(PRICE, PROMPT, 2)
        assert cost == 130  # (22 x 5000 + 2 x 10000) / 1000: not 20, the tokens alone
        assert await settlement(h).balance(account) == (1000 - cost, 0)
        assert await settlement(h).balance(operator_account("alice")) == (123, 0)  # 5 %: 7
        receipts = [json.loads(e[6:]) for e in r.text.split("\n\n") if '"error"' in e]
        (receipt,) = [e["mesh"]["receipt"] for e in receipts]
        assert receipt["prompt_tokens"] == 0  # the receipt keeps what the node said


async def test_a_stream_continued_on_another_node_pays_each_for_its_part(tmp_path: Path) -> None:
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "a":
            return httpx.Response(200, headers=sse, stream=Dies(
                completion_chunks("a", model, ["Once", " upon"])[:2]))  # fmt: skip
        chunks = completion_chunks("b", model, [" a", " time"])
        return httpx.Response(200, headers=sse, content=b"".join(chunks))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await register(h, "a", "alice")
        await register(h, "b", "bob")
        s = settlement(h)
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        await _first_is(h, "a", "b", body, "/v1/completions")  # anonymous: the pool pays
        await settled(s)
        # b's usage: 7 prompt tokens (its prompt held a's two tokens: 5 are the request's)
        # a delivered 2 tokens; b processed the prompt again and is paid it with its own 2
        # (attack30: the prompt went with a, the part that broke)
        a_cost, b_cost = request_cost(PRICE, 0, 2), request_cost(PRICE, 5, 2)
        assert (a_cost, b_cost) == (20, 45)
        assert await s.balance(operator_account("alice")) == (a_cost - 1, 0)  # 5 % fee
        assert await s.balance(operator_account("bob")) == (b_cost - 3, 0)  # 2.25: 3
        assert await s.balance(NETWORK) == (4, 0)
        budget = h.settings.pool_daily_budget
        assert await s.balance(POOL) == (budget - a_cost - b_cost, 0)


async def test_a_continued_stream_cut_short_again_pays_the_prompt_once_and_each_its_part(
    tmp_path: Path,
) -> None:
    """a dies after two tokens, b continues and dies after two more, nobody is left: no
    node ever said the prompt's count, so it is charged at a usual count, once, with b (the
    last node that processed it, with a's text); a is paid its two tokens."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        words = ["Once", " upon"] if node.node_id == "a" else [" a", " time"]
        return httpx.Response(200, headers=sse, stream=Dies(
            completion_chunks(node.node_id, model, words)[:2]))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await register(h, "a", "alice")
        await register(h, "b", "bob")
        s = settlement(h)
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        text = await _first_is(h, "a", "b", body, "/v1/completions")
        assert '"error"' in text  # cut short: nobody finished it
        await settled(s)
        prompt = usual_prompt_tokens("Tell me:")
        a_cost, b_cost = request_cost(PRICE, 0, 2), request_cost(PRICE, prompt, 2)
        assert (prompt, a_cost, b_cost) == (19, 20, 115)
        assert await s.balance(operator_account("alice")) == (a_cost - 1, 0)  # 5 % fee
        assert await s.balance(operator_account("bob")) == (b_cost - 6, 0)  # 5.75: 6
        budget = h.settings.pool_daily_budget
        assert await s.balance(POOL) == (budget - a_cost - b_cost, 0)


async def test_a_client_that_leaves_mid_stream_pays_what_it_got(tmp_path: Path) -> None:
    """The client goes away after its first token; the node had sent two (the gateway took
    both from it): two are paid, to the node that made them, with the prompt it processed
    (at the estimate's count: the node never sent its usage)."""
    async with running(tmp_path, nodes=stalling_nodes()) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        await cut_after_first_token(h, key, BODY)
        s = settlement(h)
        await s.flush()
        cost = request_cost(PRICE, PROMPT, 2)
        assert cost == 130
        assert await s.balance(account) == (1000 - cost, 0)
        assert await s.balance(operator_account("alice")) == (cost - 7, 0)  # 6.5: 7


async def test_a_replayed_answer_is_not_paid_twice(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), "X-Request-Id": "mine-1"}
        first = await h.client.post(CHAT, json=BODY, headers=headers)
        again = await h.client.post(CHAT, json=BODY, headers=headers)
        assert again.headers.get("x-mesh-replayed") == "true" and again.json() == first.json()
        assert len(node.calls) == 1
        await settlement(h).flush()
        assert await settlement(h).balance(account) == (1000 - COST, 0)
        ledger = h.runtime.ledger
        assert ledger is not None
        entries, _ = await ledger.entries(-1, 100)
        keys = {e.request_id for e in entries if e.kind == "settle"}
        (key_used,) = keys
        assert key_used.startswith(client_ledger_id("mine-1") + "~")  # its hash, made unique
        assert first.json()["mesh"]["ledger_request_id"] == key_used


async def test_with_settlement_off_nothing_is_reserved_or_paid(tmp_path: Path) -> None:
    async with running(tmp_path, settlement=False) as h:
        node = await h.register("a", models=[MODEL])
        made = await create_api_key(h.store)
        assert made is not None
        r = await h.client.post(CHAT, json=BODY, headers=bearer(made[0]))
        assert r.status_code == 200 and r.json()["mesh"]["cost"] == COST
        assert h.runtime.settlement is None and len(node.calls) == 1
        ledger = h.runtime.ledger
        assert ledger is not None
        assert (await ledger.head())[0] == 0


async def test_balance_endpoint_shows_balance_reserved_and_available(tmp_path: Path) -> None:
    async with running(tmp_path, pool_daily_budget=7_000) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.get("/v1/balance", headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "object": "balance", "account": account, "payer": "user", "balance": 1000,
            "reserved": 0, "available": 1000, "unit": "micro-NetworkToken", "settlement": True,
            "tree_size": 2,  # the pool's top-up and the user's grant add up to its balance
        }  # fmt: skip
        assert (await h.client.post(CHAT, json=BODY, headers=bearer(key))).status_code == 200
        mine = (await h.client.get("/v1/balance", headers=bearer(key))).json()
        assert (mine["balance"], mine["reserved"], mine["available"]) == (1000, COST, 900)
        await settlement(h).flush()
        mine = (await h.client.get("/v1/balance", headers=bearer(key))).json()
        assert (mine["balance"], mine["reserved"], mine["available"]) == (900, 0, 900)
        assert mine["tree_size"] == 4  # the request's settle and fee entries
        pool = (await h.client.get("/v1/balance")).json()
        assert pool["account"] == POOL and pool["payer"] == "pool"
        assert pool["balance"] == 7_000 and pool["daily_budget"] == 7_000
        r = await h.client.get("/v1/balance", headers=bearer("lmk_" + "x" * 43))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


async def test_a_settlement_database_failure_runs_nothing_and_is_503(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, _account = await new_user(h, 1000)
        s = settlement(h)

        def broken(*_a: Any, **_kw: Any) -> Any:
            raise RuntimeError("disk on fire")

        async def broken_async(*_a: Any, **_kw: Any) -> Any:
            raise RuntimeError("disk on fire")

        s.db.try_inline = broken  # type: ignore[attr-defined]
        s.db.apply = broken_async  # type: ignore[method-assign]
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "settlement_unavailable"
        assert r.headers["retry-after"] == "1"  # found 2026-12-04, review: none
        assert node.calls == []


async def test_an_answer_that_cannot_be_recorded_is_still_released_and_unpaid(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        s = settlement(h)

        async def no_record(_op: Any) -> bool:
            raise RuntimeError("the database went away")

        s.answer = no_record  # type: ignore[method-assign]
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200 and r.json()["mesh"]["cost"] == COST
        await s.flush()
        assert await s.balance(account) == (1000, ESTIMATE)  # still pending: nothing paid
        await s.recover([s.holder])  # what a stop (or, after a crash, recovery) does
        assert await s.balance(account) == (1000, 0)


async def test_a_new_utc_day_refills_a_dry_pool_at_once(tmp_path: Path) -> None:
    now = [1_796_083_200.0 + 3600]  # 2026-12-01 01:00 UTC
    async with running(
        tmp_path, pool_daily_budget=ESTIMATE + COST - 1, wall_clock=lambda: now[0]
    ) as h:
        await register(h, "a", "alice")
        assert (await h.client.post(CHAT, json=BODY)).status_code == 200
        await settlement(h).flush()
        assert (await h.client.post(CHAT, json=BODY)).status_code == 402
        now[0] += 86_400  # the next day, before any upkeep round: the refusal tops it up
        assert (await h.client.post(CHAT, json=BODY)).status_code == 200


@pytest.mark.parametrize("with_id", [False, True], ids=["no-id", "request-id"])
async def test_a_request_that_raises_before_it_is_paid_releases_its_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_id: bool
) -> None:
    """A non-stream whose handler raises other than a refusal (a bug in a later stage; a
    cancellation) before it is paid: its reservation is voided at once, as a failure's
    (found 2026-12-03: the admission told the price check it ended "without an answer to
    keep", as an open stream, which is paid when it ends, so the estimate stayed reserved,
    out of the payer's available balance, until the gateway process stopped)."""
    from LLM_Mesh.registry import pipeline

    def broken(*_a: Any, **_k: Any) -> float:
        raise RuntimeError("a bug after the node answered")

    monkeypatch.setattr(pipeline, "mesh_answer", broken)
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), **({"X-Request-Id": "r-9"} if with_id else {})}
        r = await h.client.post(CHAT, json=BODY, headers=headers)
        assert r.status_code == 500 and len(node.calls) == 1
        s = settlement(h)
        for _ in range(40):  # the void is queued, not awaited; the lease goes back idle
            await s.flush()
            s.give_back(float("inf"))
            await s.flush()
            if await s.balance(account) == (1000, 0):
                break
            await asyncio.sleep(0.05)
        assert await s.balance(account) == (1000, 0)  # nothing paid, nothing held


async def test_an_answer_that_cannot_be_made_is_not_paid_and_its_retry_not_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's bytes are made before it is paid: a failure there (a bug) is a 500 that
    costs nothing, and the retry the 500 invites, with the same request id, is not paid on
    top of a first payment (found 2026-12-03: the payment came first, then the failure:
    the 500 freed the id, the retry ran again and was paid again, 2 answers paid, none
    delivered)."""
    from LLM_Mesh.registry import pipeline

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("the answer's bytes could not be made")

    monkeypatch.setattr(pipeline, "json_answer", broken)
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), "X-Request-Id": "r-1"}
        for _ in range(2):
            r = await h.client.post(CHAT, json=BODY, headers=headers)
            assert r.status_code == 500
        assert len(node.calls) == 2  # the 500 frees the id: the retry runs
        s = settlement(h)
        for _ in range(40):  # the voids are queued, not awaited; the lease goes back idle
            await s.flush()
            s.give_back(float("inf"))
            await s.flush()
            if await s.balance(account) == (1000, 0):
                break
            await asyncio.sleep(0.05)
        assert await s.balance(account) == (1000, 0)
        assert await s.balance(operator_account("alice")) == (0, 0)
