"""The receipt of a stream its client cut is stored, for its payer (``registry/cut_receipts.py``,
``registry/receipts_api.py``, migration 0031).

Found open 2026-12-06 (money36's note), closed 2026-12-06 (money37): nobody receives such a
receipt (the client left), and it was kept only in the gateway's log, so the payer had no way
to read the `cut` part its charge stands on (its node's signed prompt count), and an audit
needed the operator's log of that day. The real app with fake nodes
(``tests/registry/helpers.py``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.receipt import PartStatus, ReceiptError
from LLM_Mesh.core.receipt_verify import decode_header
from LLM_Mesh.registry.cut_receipts import CutReceiptWriter
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store_cut_receipts import CutReceipt, MemoryCutReceipts
from tests.registry.helpers import ADMIN_KEY, FakeNode, FakeNodes, Harness, running, sse_chunks
from tests.registry.signing_nodes import (
    MODEL,
    NODE_A,
    NODE_B,
    SIGNERS,
    Stalls,
    cut_after_first_token,
    said_headers,
)
from tests.registry.test_access import bearer
from tests.registry.test_charge import new_user, register, settled, settlement
from tests.registry.test_midstream import Dies
from tests.registry.test_receipts import registry_keys
from tests.registry.test_store_cut_receipts import made

SECRET = "the prompt nobody stores 7f3a"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": SECRET}], "max_tokens": 5}
NODE_COUNT = 17  # the continuing node's own (signed) count of the prompt


def _continued_then_cut_nodes() -> FakeNodes:
    """NODE_A sends "w" and its connection breaks; NODE_B continues, signing its prompt
    count, sends "x" and "y", then nothing more: the client leaves at "x"."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == NODE_A:
            sse = {"content-type": "text/event-stream"}
            return httpx.Response(
                200, headers=sse, stream=Dies(sse_chunks(model, NODE_A, ["w"])[:2])
            )
        return httpx.Response(200, headers=said_headers(node, str(NODE_COUNT)), stream=Stalls())

    nodes.stream_factory = factory
    return nodes


async def _cut_at_x(h: Harness, key: str) -> None:
    """BODY streamed with ``key`` (NODE_A first: NODE_B looks busy), the client gone at "x"."""
    busy = h.runtime.routing.begin(NODE_B, MODEL)
    try:
        await cut_after_first_token(h, key, BODY)
    finally:
        h.runtime.routing.finish(busy, Outcome.CANCELLED)


async def _stored(h: Harness) -> CutReceipt:
    writer = h.runtime.cut_receipts
    assert writer is not None
    await writer.flush()
    (row,) = h.store.cut_receipts.values()
    return row


async def test_a_continued_stream_cut_by_its_client_has_its_receipt_stored_and_verifiable(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, nodes=_continued_then_cut_nodes(), max_attempts=3) as h:
        await register(h, NODE_A, "alice")
        await register(h, NODE_B, "bob", continuation=True)
        key, account = await new_user(h, 10**6)
        other, _ = await new_user(h, 10)
        await _cut_at_x(h, key)
        await settled(settlement(h))
        row = await _stored(h)  # before the fix: nothing held it (only the log)
        assert row.payer == account
        assert SECRET not in json.dumps(row.receipt)  # no prompt (nor output) text stored
        # the payer reads it, and `receipt verify`'s own check passes it
        r = await h.client.get(f"/v1/receipts/{row.receipt_hash}", headers=bearer(key))
        assert r.status_code == 200, r.text
        checked = check(r.text, await registry_keys(h))
        assert checked.receipt_hash == row.receipt_hash
        first, cut = checked.parts
        assert first.node_id == NODE_A and cut.node_id == NODE_B
        assert cut.status is PartStatus.CUT and cut.prompt_tokens == NODE_COUNT
        assert cut.node_key == SIGNERS[NODE_B].node_key and cut.node_signature
        # the ledger's entries of the request commit to it
        ledger = h.runtime.ledger
        assert isinstance(ledger, SqlLedger)
        entries, _ = await ledger.entries(-1, 100)
        mine = [e for e in entries if e.request_id == r.json()["mesh"]["ledger_request_id"]]
        assert mine and {e.receipt_hash for e in mine} == {row.receipt_hash}
        # the admin reads it too; another user, no key, or no such hash: 404 alike
        assert (await h.client.get(f"/v1/receipts/{row.receipt_hash}",
                                   headers=bearer(ADMIN_KEY))).status_code == 200  # fmt: skip
        wrong = await h.client.get(f"/v1/receipts/{row.receipt_hash}", headers=bearer("lma_x"))
        assert wrong.status_code == 401  # a wrong admin key
        for headers in (bearer(other), {}):
            gone = await h.client.get(f"/v1/receipts/{row.receipt_hash}", headers=headers)
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_receipt"
        assert (
            await h.client.get("/v1/receipts/" + "0" * 64, headers=bearer(key))
        ).status_code == 404
        # a receipt altered where it is stored no longer verifies
        forged = {**row.receipt, "prompt_tokens": row.receipt["prompt_tokens"] + 1000}
        h.store.cut_receipts[row.receipt_hash] = CutReceipt(
            row.receipt_hash, row.request_id, row.payer, row.created_at, forged
        )
        r = await h.client.get(f"/v1/receipts/{row.receipt_hash}", headers=bearer(key))
        assert r.status_code == 200
        with pytest.raises(ReceiptError):
            check(r.text, await registry_keys(h))


class _Failing(MemoryCutReceipts):
    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    async def record_cut_receipts(self, receipts: Sequence[CutReceipt]) -> None:
        if self.fails:
            self.fails -= 1
            raise OSError("the database is away")
        await super().record_cut_receipts(receipts)


async def test_a_failed_write_loses_nothing_it_is_logged_whole_and_written_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.cut_receipts")
    store = _Failing(fails=2)
    writer = CutReceiptWriter(store, flush_interval_s=0.01)
    r, s = made("req-1"), made("req-2")
    writer.submit(r)
    writer.submit(s)
    assert await writer.flush() == 0 and await writer.flush() == 0  # the database away
    assert writer.queued == 2 and writer.failed == 2 and store.cut_receipts == {}
    logged = [
        m.rsplit(": ", 1)[1]
        for m in (x.getMessage() for x in caplog.records)
        if "not yet stored" in m
    ]
    assert [decode_header(v) for v in logged] == [r.receipt, s.receipt]  # once each, whole
    assert await writer.flush() == 2  # back: written, in order
    assert set(store.cut_receipts) == {r.receipt_hash, s.receipt_hash}
    assert writer.queued == 0 and writer.written == 2 and writer.dropped == 0


async def test_stop_writes_what_is_queued_trying_again_until_the_database_returns() -> None:
    store = _Failing(fails=3)
    writer = CutReceiptWriter(store, flush_interval_s=0.01)
    writer.start()
    writer.submit(made())
    await writer.stop(timeout_s=5.0)
    assert list(store.cut_receipts) == [made().receipt_hash] and writer.queued == 0


async def test_a_receipt_failed_then_left_at_stop_is_in_the_log_whole_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Session 38's note (the documented retry case): a receipt whose write failed, logged
    whole ("not yet stored"), and still unwritten when the gateway's stop gave up was logged
    whole again ("not written before the gateway stopped"). Each receipt never stored is now
    in the log whole exactly once (what an operator recovers, `receipt verify`'s form), the
    stop's line naming its hash."""
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.cut_receipts")
    writer = CutReceiptWriter(_Failing(fails=10**6), flush_interval_s=0.01)
    r = made("req-1")
    writer.submit(r)
    assert await writer.flush() == 0  # the database away: logged whole
    s = made("req-2")
    writer.submit(s)  # queued after it: first logged at the stop
    await writer.stop(timeout_s=0.05)
    lines = [x.getMessage() for x in caplog.records]
    whole: list[object] = []
    for line in lines:
        try:
            whole.append(decode_header(line.rsplit(": ", 1)[-1]))
        except ReceiptError:  # not a receipt: a count or a short line
            continue
    assert sorted(whole, key=str) == sorted([r.receipt, s.receipt], key=str), lines
    stopped = [m for m in lines if "not written before the gateway stopped" in m]
    named = {x.receipt_hash for x in (r, s) if any(x.receipt_hash in m for m in stopped)}
    assert len(stopped) == 2 and named == {r.receipt_hash, s.receipt_hash}, stopped


async def test_a_full_queue_drops_its_oldest_into_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.cut_receipts")
    writer = CutReceiptWriter(_Failing(fails=0), max_queue=1)
    old, new = made("req-1"), made("req-2")
    writer.submit(old)
    writer.submit(new)
    assert writer.queued == 1 and writer.dropped == 1
    (line,) = [x.getMessage() for x in caplog.records if "dropped unwritten" in x.getMessage()]
    assert decode_header(line.rsplit(": ", 1)[1]) == old.receipt


class _Away(MemoryCutReceipts):
    def __init__(self) -> None:
        super().__init__()
        self.away = True

    async def record_cut_receipts(self, receipts: Sequence[CutReceipt]) -> None:
        if self.away:
            raise ConnectionRefusedError(111, "Connection refused")
        await super().record_cut_receipts(receipts)


async def test_an_outage_of_the_receipts_writer_is_one_error_past_60_s_and_its_end_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """alarm42: the writer said "written again later" at WARNING every round for as long as
    the database was away, never an ERROR, and nothing at its end; now as every loop's
    (``failed_rounds.RoundLog``): the run's first round's WARNING (loops43: before, each
    round's, 30 till the ERROR; ``first_only`` as the store polls, the rest at DEBUG), 60 s
    into it one ERROR, and one INFO when a write succeeds."""
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.cut_receipts")
    store = _Away()
    writer = CutReceiptWriter(store)
    writer.submit_logged(made("req-1"))  # logged whole by its maker: no whole line here
    now = [0.0]
    writer._policy.round_log.clock = lambda: now[0]
    for _ in range(40):  # a write every 2 s for 80 s
        assert await writer.flush() == 0
        now[0] += 2.0
    store.away = False
    assert await writer.flush() == 1
    said = [(x.levelno, x.getMessage()) for x in caplog.records]
    assert [lv for lv, _ in said].count(logging.WARNING) == 1  # loops43: before, 30
    assert [lv for lv, _ in said].count(logging.DEBUG) == 39  # the rest (the ERROR's at 60 s)
    assert said[0] == (
        logging.WARNING,
        "could not store 1 cut receipts, the database's connection lost or refused "
        "(ConnectionRefusedError: [Errno 111] Connection refused); written again later",
    )
    (error,) = [m for lv, m in said if lv == logging.ERROR]
    assert error.startswith(
        "the cut receipts writer: still failing after 60 s, 31 failed rounds in a row (since "
    )
    assert said[-1][0] == logging.INFO
    assert said[-1][1].startswith(
        "the cut receipts writer: recovered after 40 failed rounds over 80 s (since "
    )
