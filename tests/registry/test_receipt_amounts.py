"""The countersigned receipt carries the money (version 4: fees rounded up): each part's amount and network
fee and the request's cost, exactly what settlement writes to the ledger for that request
(``account.charge_parts``, computed once), through the real app with fake nodes; prices and
amounts as in ``tests/registry/test_charge.py`` (10 prompt + 5 completion tokens of
``mistral-7b``: 100 µNT, 95 to the operator, 5 to ``network`` at 5 %)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.ledger_entry import NETWORK, POOL
from LLM_Mesh.core.pricing import network_fee, request_cost
from LLM_Mesh.core.receipt import ReceiptError
from tests.keyed import operator_account
from tests.registry.helpers import FakeNode, FakeNodes, Harness, running
from tests.registry.test_charge import (
    BODY,
    CHAT,
    COST,
    MODEL,
    PRICE,
    PROMPT,
    bearer,
    new_user,
    register,
    settlement,
)
from tests.registry.test_midstream import Dies, _first_is, completion_chunks
from tests.registry.test_receipts import SigningNodes, registry_keys

Entry = tuple[str, str, str, int]


async def _ledger(h: Harness, mesh: dict[str, Any]) -> list[Entry]:
    """The request's ledger entries, settled: ``(kind, from, to, amount)``, each committing
    to the receipt's hash."""
    s = settlement(h)
    await s.flush()
    ledger = h.runtime.ledger
    assert ledger is not None
    entries, _ = await ledger.entries(-1, 1000)
    key = mesh.get("ledger_request_id", mesh["request_id"])
    mine = [e for e in entries if e.request_id == key]
    assert {e.receipt_hash for e in mine} == {mesh["receipt"]["receipt_hash"]}
    return [(e.kind, e.from_account, e.to_account, e.amount) for e in mine]


def _paid(receipt: dict[str, Any]) -> list[tuple[int, int]]:
    return [(p["amount"], p["fee"]) for p in receipt["parts"]]


def _final(sse: str) -> dict[str, Any]:
    """The last ``data:`` object of a stream that carries ``mesh.receipt``."""
    events = [json.loads(e[6:]) for e in sse.split("\n\n") if e.startswith("data: {")]
    return [e for e in events if "receipt" in e.get("mesh", {})][-1]


def _refused(text: str, keys: Any) -> str:
    with pytest.raises(ReceiptError) as exc:
        check(text, keys)
    return exc.value.reason


async def test_a_whole_answers_receipt_signs_what_the_ledger_charged(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200, r.text
        mesh = r.json()["mesh"]
        receipt = mesh["receipt"]
        keys = await registry_keys(h)
        checked = check(r.text, keys)  # offline, as `llm-mesh receipt verify` does
        assert (receipt["v"], receipt["settled"], receipt["payer"]) == (4, True, "user")
        assert receipt["fee_bps"] == h.settings.network_fee_bps == 500
        assert receipt["cost"] == mesh["cost"] == COST == checked.money.cost  # type: ignore[union-attr]
        assert _paid(receipt) == [(COST, 5)]
        assert await _ledger(h, mesh) == [
            ("settle", account, operator_account("alice"), COST - 5),
            ("fee", account, NETWORK, 5),
        ]
        assert account.startswith("user:") and account not in json.dumps(receipt)
        # an amount changed after the registry signed: refused
        for field, value in (("amount", COST - 1), ("fee", 0)):
            forged = copy.deepcopy(r.json())
            forged["mesh"]["receipt"]["parts"][0][field] = value
            assert _refused(json.dumps(forged), keys) == "gateway_signature", field
        forged = copy.deepcopy(r.json())
        forged["mesh"]["receipt"]["cost"] = COST - 1
        assert _refused(json.dumps(forged), keys) == "gateway_signature"


async def test_a_streams_receipt_signs_what_the_ledger_charged(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        mesh = _final(r.text)["mesh"]
        receipt = mesh["receipt"]
        check(r.text, await registry_keys(h))
        cost = request_cost(PRICE, 4, 3)  # sse_chunks' usage: 4 prompt, 3 completion
        fee = network_fee(cost, 500)  # rounded up since receipt version 4 (money34)
        assert receipt["cost"] == mesh["cost"] == cost and _paid(receipt) == [(cost, fee)]
        assert await _ledger(h, mesh) == [
            ("settle", account, operator_account("alice"), cost - fee),
            ("fee", account, NETWORK, fee),
        ]


async def test_a_continued_streams_receipt_signs_each_parts_amount(tmp_path: Path) -> None:
    """Two nodes, the pool pays: each part's amount and fee are its ledger entries'."""
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
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        text = await _first_is(h, "a", "b", body, "/v1/completions")
        mesh = _final(text)["mesh"]
        receipt = mesh["receipt"]
        check(text, await registry_keys(h))
        assert [p["node_id"] for p in receipt["parts"]] == ["a", "b"]
        # the prompt with b, the last part (it processed it again after a broke); fees rounded up
        assert receipt["payer"] == "pool" and _paid(receipt) == [(20, 1), (45, 3)]
        assert receipt["cost"] == mesh["cost"] == 65
        assert await _ledger(h, mesh) == [
            ("settle", POOL, operator_account("alice"), 19),
            ("fee", POOL, NETWORK, 1),
            ("settle", POOL, operator_account("bob"), 42),
            ("fee", POOL, NETWORK, 3),
        ]


async def test_a_stream_cut_short_signs_what_it_was_charged_in_its_error_event(
    tmp_path: Path,
) -> None:
    """The node dies after two tokens, nobody can continue a chat: the error event's receipt
    states the two tokens and the prompt's usual count charged (test_charge.py's case)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        from tests.registry.helpers import sse_chunks

        return httpx.Response(200, headers=sse, stream=Dies(sse_chunks(model, "a", ["x", "y"])[:3]))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and '"error"' in r.text
        mesh = _final(r.text)["mesh"]
        cost = request_cost(PRICE, PROMPT, 2)
        assert mesh["receipt"]["cost"] == cost == 130 and _paid(mesh["receipt"]) == [(130, 7)]
        assert await _ledger(h, mesh) == [
            ("settle", account, operator_account("alice"), 123),
            ("fee", account, NETWORK, 7),
        ]


async def test_a_part_nobody_pays_is_signed_at_zero_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    """A node whose receipt does not verify (it signed more tokens than it sent) is not
    paid: its part's amount is 0, the cost 0, and the ledger has no entry for the request."""
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node_id = nodes.new()
        nodes.cheat[node_id] = "counts"
        await h.register(node_id)
        r = await h.client.post("/v1/chat/completions", json={"model": "gemma-3-270m",
                                "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 200, r.text
        receipt = r.json()["mesh"]["receipt"]
        check(r.text, await registry_keys(h))
        assert receipt["parts"][0]["status"] == "invalid" and receipt["settled"] is True
        assert (receipt["cost"], _paid(receipt)) == (0, [(0, 0)])
        assert r.json()["mesh"]["cost"] == 0
        await settlement(h).flush()
        ledger = h.runtime.ledger
        assert ledger is not None
        entries, _ = await ledger.entries(-1, 1000)
        assert not [e for e in entries if e.receipt_hash == receipt["receipt_hash"]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_with_settlement_off_the_receipt_says_so_and_states_no_amount(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path, settlement=False) as h:
        await h.register("a", models=[MODEL])
        r = await h.client.post(CHAT, json={**BODY, "stream": stream})
        assert r.status_code == 200, r.text
        mesh = _final(r.text)["mesh"] if stream else r.json()["mesh"]
        receipt = mesh["receipt"]
        assert mesh["cost"] > 0  # still computed (not charged)
        assert (receipt["v"], receipt["settled"]) == (4, False)
        assert not {"payer", "fee_bps", "cost"} & set(receipt)
        assert not {"amount", "fee"} & set(receipt["parts"][0])
        assert check(r.text, await registry_keys(h)).money is None
