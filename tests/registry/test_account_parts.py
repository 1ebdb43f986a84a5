"""A request's node parts paid part by part (``account.payable_parts``,
``core/part_match.py``; found 2026-12-07, money44).

Before: when the receipt's parts (one per part the gateway relayed text of) and the priced
parts (one per node part, a part that delivered nothing included) differed in count, any
node with one unpayable receipt part had *every* part zeroed: a stream continued A → B → A,
B delivering nothing, A's first part invalid, paid A nothing for its good second part; and
a part with a price and no receipt part was charged with no receipt part to sign it, so the
whole request went unpriced (nobody charged, nobody paid). Now each priced part is matched to
its own receipt part (``Observed.part``: the send stage's count of earlier parts) and only a
part that is not payable, or has no receipt part, costs nothing; the client is charged the
rest, the receipt signs those very amounts and the payment writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.part_match import NOT_SAID
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part
from LLM_Mesh.core.receipt_money import OTHERS_FAULT, OWN_FAULT
from LLM_Mesh.core.receipt_verify import Found, verify
from LLM_Mesh.registry import account
from LLM_Mesh.registry.job import Charged, Job, Tally
from LLM_Mesh.registry.store_unpaid import Unpaid
from tests.core.receipt_verify_fixtures import KEYS, SIGNER
from tests.keyed import operator_account
from tests.registry.helpers import FakeNode, FakeNodes, running
from tests.registry.test_charge import MODEL, register
from tests.registry.test_midstream import Dies, completion_chunks
from tests.registry.test_receipt_amounts import _final, _ledger
from tests.registry.test_receipts import registry_keys, tallies  # noqa: F401 (the fixture)

DIGEST = "ab" * 32
PROMPT = 10
MALFORMED = {"node_key": 1}  # a node's receipt that does not verify: its part ``invalid``

# (node, completion tokens, its receipt part: "ok" payable, "bad" invalid, "none": none)
Shape = Sequence[tuple[str, int, str]]


class Payment:
    """The client's payment: what it was asked to write to the ledger."""

    payer, fee_bps, estimate, written = "user:u1", 500, 10**9, False

    def __init__(self) -> None:
        self.paid: list[Charged] | None = None

    async def pay(self, parts: Sequence[Charged], receipt_hash: str | None) -> None:
        self.paid = list(parts)

    def void(self) -> None:  # pragma: no cover - an answered request is paid
        raise AssertionError("voided")


def _payment() -> Any:
    return Payment()


class Told:
    def __init__(self) -> None:
        self.rows: list[Unpaid] = []

    def submit(self, row: Unpaid) -> None:
        self.rows.append(row)


def _job() -> Job:
    spec = get_spec(MODEL)
    assert spec is not None
    return Job(path="/v1/chat/completions", model=MODEL, body={}, raw=b"{}", stream=True,
               prompt_text="x" * 200, max_tokens=64, price=spec.price, estimate=10**9,
               catalog_context=spec.context_length, request_id="req-1", started=0.0)  # fmt: skip


def _tally(shape: Shape, *, said: bool = True) -> Tally:
    """A stream continued over ``shape``'s node parts, the last the node that finished;
    ``said``: each receipt part says which priced part it is (as the send stage writes)."""
    tally = Tally()
    *earlier, (last, last_tokens, _) = shape
    tally.parts = [(node, tokens) for node, tokens, _ in earlier]
    tally.node_id, tally.completion_tokens, tally.prompt_tokens = last, last_tokens, PROMPT
    for i, (node, tokens, kind) in enumerate(shape):
        if kind == "none":
            continue
        final = i == len(shape) - 1
        tally.outputs.append(Observed(
            node, PROMPT if final else 0, tokens, DIGEST,
            claim=MALFORMED if kind == "bad" else None,
            no_receipt=PartStatus.MISSING if final else PartStatus.BROKEN,
            part=i if said else NOT_SAID,
        ))  # fmt: skip
    tally.output_sha256 = DIGEST
    return tally


def _runtime() -> Any:
    return SimpleNamespace(receipts=SIGNER, node_keys=NodeKeys(), metrics=None, unpaid=Told(),
                           wall_clock=lambda: 1_700_000_000.0,
                           table=SimpleNamespace(hosted=lambda node, model: None))  # fmt: skip


def _expected(job: Job, tally: Tally, shape: Shape) -> list[tuple[str, int]]:
    """Each part's price, 0 for one whose receipt part is not payable or missing."""
    priced = account.price_parts(job, tally)
    return [
        (n, a if kind == "ok" else 0) for (n, a), (_, _, kind) in zip(priced, shape, strict=True)
    ]


SHAPES = {
    # A -> B -> A, B delivered nothing (no receipt part); one of A's parts invalid
    "a_first_bad": [("a", 3, "bad"), ("b", 0, "none"), ("a", 4, "ok")],
    "a_last_bad": [("a", 3, "ok"), ("b", 0, "none"), ("a", 4, "bad")],
    # B's part alone invalid (C delivered nothing): A paid both parts
    "b_bad": [("a", 3, "ok"), ("b", 2, "bad"), ("c", 0, "none"), ("a", 4, "ok")],
    # B delivered and has no receipt part at all (a wiring fault): B alone not paid
    "b_no_receipt": [("a", 3, "ok"), ("b", 2, "none"), ("a", 4, "ok")],
    # the counts equal: by position, as before
    "equal_a_bad": [("a", 3, "bad"), ("b", 2, "ok"), ("a", 4, "ok")],
    "equal_all_ok": [("a", 3, "ok"), ("b", 2, "ok"), ("a", 4, "ok")],
}


@pytest.mark.parametrize("name", list(SHAPES))
async def test_each_part_is_paid_as_its_own_receipt_part_says(name: str) -> None:
    """Before the fix ``a_first_bad`` and ``a_last_bad`` paid A nothing at all and
    ``b_no_receipt`` charged nobody (its receipt could not carry B's charge)."""
    shape, job, rt, payment = SHAPES[name], _job(), _runtime(), Payment()
    paying: Any = payment  # (the Payment protocol's part the account stage uses)
    tally = _tally(shape)
    # the answer's mesh (its receipt made: account.make_receipt) and the client's cost
    mesh = account.build_mesh(rt, job, tally, None, latency_ms=1.0, payment=paying)
    receipt = mesh["receipt"]
    expected = _expected(job, tally, shape)
    assert any(a for _, a in expected)  # (something is paid in each)
    charged = tally.charged
    assert charged is not None
    assert [(n, a) for n, a, _ in charged] == expected
    # the client pays exactly the payable parts: the mesh's cost, the ledger's entries
    assert mesh["cost"] == sum(a for _, a in expected)
    client: Any = SimpleNamespace(payment=payment)
    await account.pay(job, tally, client)
    assert payment.paid == charged
    # the receipt signs those very figures: verified, each part's amount and fee its charge
    signed = verify(Found(receipt), KEYS)
    assert signed.money is not None and signed.money.cost == mesh["cost"]
    on_parts = [(p.node_id, p.amount, p.fee) for p in signed.parts if p.amount]
    assert on_parts == [c for c in charged if c[1]]
    kinds = [kind for _, _, kind in shape if kind != "none"]
    assert [p.status is PartStatus.INVALID for p in signed.parts] == [k == "bad" for k in kinds]


@pytest.mark.parametrize("name", ["a_first_bad", "equal_all_ok"])
def test_a_requests_parts_are_matched_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``make_receipt`` matches the priced parts to the receipt parts once, the match
    carried with the charges (money45: before, twice, once in ``payable_parts`` and again
    for the receipt's amounts, the same answer both times), and the receipt's amounts are
    each part's own charge all the same."""
    calls: list[int] = []
    real = account.match_parts

    def counted(*a: Any) -> list[int | None]:
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(account, "match_parts", counted)
    job, tally = _job(), _tally(SHAPES[name])
    receipt = account.make_receipt(_runtime(), job, tally, _payment())
    assert len(calls) == 1  # before the fix: 2
    assert receipt is not None and receipt["settled"] is True
    charged = tally.charged
    assert charged is not None
    assert [(n, a) for n, a, _ in charged] == _expected(job, tally, SHAPES[name])
    on_parts = [(p["node_id"], p["amount"]) for p in receipt["parts"] if p["amount"]]
    assert on_parts == [(n, a) for n, a, _ in charged if a]


def test_the_last_part_of_a_node_is_paid_when_its_first_is_not() -> None:
    """The brief's case in ``payable_parts`` alone: A → B → A, A's first part invalid, B
    without a receipt part: A's second part paid (before: 0, as every part of A)."""
    job, shape = _job(), SHAPES["a_first_bad"]
    tally = _tally(shape)
    account.make_receipt(_runtime(), job, tally, None)
    got, found = account.payable_parts(job, tally)
    assert found == [0, None, 1]  # (receipt parts 0 and 1: B's priced part has none)
    assert got[2][1] > 0 and got[2] == account.price_parts(job, tally)[2]
    assert [a for _, a in got[:2]] == [0, 0]


@pytest.mark.parametrize(
    ("name", "paid"),
    [("a_first_bad", [False, False, True]), ("b_bad", [True, False, False, True]),
     ("equal_a_bad", [False, True, True])],
)  # fmt: skip
def test_receipt_parts_that_say_no_index_are_matched_by_their_order(
    name: str, paid: list[bool]
) -> None:
    """Receipt parts without the send stage's index (``NOT_SAID``): matched where their
    order leaves no doubt (here each), as the indexes would."""
    job, shape = _job(), SHAPES[name]
    tally = _tally(shape, said=False)
    account.make_receipt(_runtime(), job, tally, None)
    assert [a > 0 for _, a in account.payable_parts(job, tally)[0]] == paid


def test_an_order_that_leaves_doubt_pays_neither_doubtful_part() -> None:
    """A → B → A with a single receipt part of A and no index: which of A's parts it is,
    nobody knows: neither is paid (failing toward not paying), B is."""
    job, tally = _job(), Tally()
    tally.parts = [("a", 3), ("b", 2)]
    tally.node_id, tally.completion_tokens, tally.prompt_tokens = "a", 4, PROMPT
    tally.node_receipts = (
        check_part(Observed("b", 0, 2, DIGEST, no_receipt=PartStatus.BROKEN),
                           registry_id="r", request_id="req-1", model=MODEL, keys=NodeKeys()),
        check_part(Observed("a", PROMPT, 4, DIGEST), registry_id="r",
                           request_id="req-1", model=MODEL, keys=NodeKeys()),
    )  # fmt: skip
    paid, found = account.payable_parts(job, tally)
    assert [a > 0 for _, a in paid] == [False, True, True] and found == [None, 0, 1]
    tally.node_receipts = tally.node_receipts[1:]  # A's alone: before or after B?
    paid, found = account.payable_parts(job, tally)
    assert [a > 0 for _, a in paid] == [False, False, False] and found == [None] * 3


def test_a_part_without_a_receipt_part_is_told_to_its_node_alone() -> None:
    """B delivered tokens and has no receipt part: B's operator is told why, in words of
    its own; A, paid, is told nothing."""
    rt, job = _runtime(), _job()
    tally = _tally(SHAPES["b_no_receipt"])
    account.make_receipt(rt, job, tally, _payment())
    assert [(u.node_id, u.reason) for u in rt.unpaid.rows] == [
        ("b", "a part this node served had no part of the receipt")
    ]


def test_each_node_of_a_request_not_charged_is_told_its_own_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A charge of A with no receipt part to go with (a wiring fault): the request is not
    charged; A's operator is told it was A's charge, B's that it was another node's, never
    A's id (before: both rows said "a charge of node a ...")."""
    real = account.charge_parts

    def one_too_many(
        job: Job, tally: Tally, payment: Any
    ) -> tuple[list[Charged], list[int | None]]:
        charged, found = real(job, tally, payment)
        return [*charged, ("a", 7, 1)], found

    monkeypatch.setattr(account, "charge_parts", one_too_many)
    rt, job = _runtime(), _job()
    tally = _tally(SHAPES["equal_all_ok"])
    receipt = account.make_receipt(rt, job, tally, _payment())
    assert receipt is not None and receipt["settled"] is False and tally.charged == []
    rows = {u.node_id: u.reason for u in rt.unpaid.rows}
    assert rows == {"a": OWN_FAULT, "b": OTHERS_FAULT}  # (no node's id in either)


async def test_the_send_stage_says_which_priced_part_each_receipt_part_is(
    tmp_path: Path,
    tallies: list[Tally],  # noqa: F811
) -> None:
    """Through the real app: a stream breaks after a token, the next node breaks before any
    (a priced part with no receipt part), a third finishes. The receipt parts say they are
    priced parts 0 and 2 (``Observed.part``), each is paid its own part, and the ledger
    writes what the receipt signs."""
    nodes, calls = FakeNodes(), []

    def factory(node: FakeNode, model: str) -> httpx.Response:
        calls.append(node.node_id)
        sse = {"content-type": "text/event-stream"}
        if len(calls) == 1:  # one token, then the connection breaks
            head = completion_chunks(node.node_id, model, ["Once", " upon"])[:1]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        if len(calls) == 2:  # breaks before any token
            return httpx.Response(200, headers=sse, stream=Dies([]))
        chunks = completion_chunks(node.node_id, model, [" upon", " a", " time"])
        return httpx.Response(200, headers=sse, content=b"".join(chunks))

    nodes.stream_factory = factory
    operators = {"a": "alice", "b": "bob", "c": "carol"}
    async with running(tmp_path, nodes=nodes, max_attempts=4) as h:
        for node, operator in operators.items():
            await register(h, node, operator)
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        r = await h.client.post("/v1/completions", json=body)
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]"), r.text
        first, second, third = calls
        (tally,) = tallies
        assert tally.parts == [(first, 1), (second, 0)]
        assert [(o.node_id, o.part) for o in tally.outputs] == [(first, 0), (third, 2)]
        assert tally.charged is not None
        assert [(n, a > 0) for n, a, _ in tally.charged] == [
            (first, True), (second, False), (third, True)
        ]  # fmt: skip
        mesh = _final(r.text)["mesh"]
        receipt = mesh["receipt"]
        check(r.text, await registry_keys(h))
        assert [p["node_id"] for p in receipt["parts"]] == [first, third]
        entries = await _ledger(h, mesh)
        for part in receipt["parts"]:  # each part's amount and fee, its node's entries
            assert part["amount"] > 0
            to = operator_account(operators[part["node_id"]])
            settle = [e for e in entries if e[0] == "settle" and e[2] == to]
            assert len(settle) == 1 and settle[0][3] == part["amount"] - part["fee"]
        assert sum(e[3] for e in entries) == receipt["cost"] == mesh["cost"]
