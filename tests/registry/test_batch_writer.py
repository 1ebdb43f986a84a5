"""The shared batch writer (``registry/batch_writer.py``): its bounds, its drain on stop and
its two failure policies, on a store call of its own (not the request log's or receipts')."""

from __future__ import annotations

import asyncio
import logging

import pytest

from LLM_Mesh.registry.batch_writer import BatchWriter, DropOnFailure, RetryOnFailure

LOG = logging.getLogger("tests.batch_writer")


class Sink:
    """A store call: records each batch; fails while ``down`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.down = False
        self.error: Exception = ConnectionError("the database is away")  # raised while down

    async def write(self, batch: list[int]) -> None:
        if self.down:
            raise self.error
        self.batches.append(list(batch))

    @property
    def values(self) -> list[int]:
        return [v for b in self.batches for v in b]


class Whole:
    """``log_whole``: what was logged whole, and why."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, value: int, why: str) -> None:
        self.lines.append((value, why))


def drop(sink: Sink, **kw: float) -> BatchWriter[int]:
    return BatchWriter(sink.write, DropOnFailure[int]("values", LOG), **kw)  # type: ignore[arg-type]


def retry(sink: Sink, whole: Whole, **kw: float) -> BatchWriter[int]:
    policy = RetryOnFailure[int]("values", LOG, key=lambda v: v, log_whole=whole)
    return BatchWriter(sink.write, policy, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [{"flush_interval_s": 0}, {"max_batch": 0}, {"max_queue": 0}])
def test_bounds_must_be_positive(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        drop(Sink(), **kw)


async def test_a_flush_writes_at_most_max_batch_in_order() -> None:
    sink = Sink()
    w = drop(sink, max_batch=3)
    for i in range(7):
        w.submit(i)
    assert (await w.flush(), w.queued) == (3, 4)
    assert (await w.flush(), await w.flush(), await w.flush()) == (3, 1, 0)
    assert sink.batches == [[0, 1, 2], [3, 4, 5], [6]] and w.written == 7


async def test_the_loop_writes_off_the_callers_path_and_drains_in_batches() -> None:
    sink = Sink()
    w = drop(sink, flush_interval_s=0.01, max_batch=2)
    w.start()
    for i in range(5):
        w.submit(i)
    assert sink.batches == []  # nothing written on submit
    for _ in range(500):
        await asyncio.sleep(0.01)
        if len(sink.values) == 5:
            break
    await w.stop()
    assert sink.values == [0, 1, 2, 3, 4] and max(map(len, sink.batches)) <= 2


async def test_stop_drains_the_queue_and_waits_for_the_write_in_progress() -> None:
    sink = Sink()
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(batch: list[int]) -> None:
        started.set()
        await release.wait()
        await sink.write(batch)

    w: BatchWriter[int] = BatchWriter(slow, DropOnFailure[int]("values", LOG), flush_interval_s=0.01,
                                      max_batch=2)  # fmt: skip
    w.start()
    for i in range(2):
        w.submit(i)
    await asyncio.wait_for(started.wait(), 30)
    for i in range(2, 5):
        w.submit(i)  # queued while the loop's write is in progress
    stopping = asyncio.ensure_future(w.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # the write in progress is waited for, not cancelled
    release.set()
    await asyncio.wait_for(stopping, 30)
    assert sink.values == [0, 1, 2, 3, 4] and w.queued == 0 and w.written == 5


async def test_drop_policy_full_queue_drops_the_value_submitted_and_counts() -> None:
    sink = Sink()
    w = drop(sink, max_queue=2)
    counted: list[tuple[str, int]] = []
    w.counted = lambda result, n: counted.append((result, n))
    for i in range(4):
        w.submit(i)
    assert (w.queued, w.dropped) == (2, 2)
    await w.flush()
    assert sink.values == [0, 1]
    assert counted == [("dropped", 1), ("dropped", 1), ("written", 2)]


@pytest.mark.parametrize(
    ("error", "level", "said"),
    [
        (RuntimeError("a bug"), logging.ERROR, "could not store 3 values; dropped"),
        (  # the database's connection lost or refused (start_retry.log_failed_round)
            ConnectionError("the database is away"),
            logging.WARNING,
            "could not store 3 values, the database's connection lost or refused "
            "(ConnectionError: the database is away); dropped",
        ),
    ],
)
async def test_drop_policy_failed_batch_is_dropped_counted_and_logged(
    error: Exception, level: int, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    w = drop(sink)
    for i in range(3):
        w.submit(i)
    sink.down, sink.error = True, error
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        assert await w.flush() == 0
    assert (w.queued, w.dropped, w.written, w.failed) == (0, 3, 0, 1)
    (record,) = caplog.records
    assert (record.levelno, record.getMessage()) == (level, said)
    if level == logging.ERROR:  # the store's error, with its traceback
        assert record.exc_info is not None and record.exc_info[1] is error
    else:  # an expected transient: one line, no traceback
        assert record.exc_info is None and "Traceback" not in caplog.text
    sink.down = False
    w.submit(9)
    await w.stop()  # a store up again: the next batch is written
    assert sink.values == [9]


@pytest.mark.parametrize(
    ("policy", "then"), [("drop", "dropped"), ("retry", "written again later")]
)
async def test_a_run_of_failed_batches_says_its_first_only_then_its_end(
    policy: str, then: str, caplog: pytest.LogCaptureFixture
) -> None:
    """loops43: both policies' writers (a write every 0.5 s) said every failed batch at
    WARNING until the run's ERROR 60 s in, 120 lines a minute of the store away; now as
    the store polls: the run's first, the others at DEBUG, its end one INFO, one set of
    words (``could not store``; the retry policy's were its own)."""
    sink, whole = Sink(), Whole()
    w = drop(sink) if policy == "drop" else retry(sink, whole)
    now = [0.0]
    w.policy.round_log.clock = lambda: now[0]
    sink.down = True
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        for i in range(10):  # 10 failed rounds, 0.5 s apart: no alarm yet
            w.submit(i)
            assert await w.flush() == 0
            now[0] += 0.5
        sink.down = False
        w.submit(10)
        assert await w.flush() > 0
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    loud = [(lv, m) for lv, m in said if lv > logging.INFO]
    assert loud == [
        (
            logging.WARNING,
            "could not store 1 values, the database's connection lost or refused "
            f"(ConnectionError: the database is away); {then}",
        )
    ]
    assert [lv for lv, _ in said].count(logging.DEBUG) == 9
    assert said[-1][0] == logging.INFO
    assert said[-1][1].startswith("the values writer: recovered after 10 failed rounds over 5 s")
    if policy == "retry":  # each value logged whole once still (the injected log_whole)
        assert [v for v, _ in whole.lines] == list(range(10))


async def test_drop_policy_stop_ends_with_the_store_down() -> None:
    sink = Sink()
    sink.down = True
    w = drop(sink, max_batch=2)
    for i in range(5):
        w.submit(i)
    await asyncio.wait_for(w.stop(timeout_s=60), 30)  # each batch dropped: no retry
    assert (w.queued, w.dropped, w.failed) == (0, 5, 3)


async def test_retry_policy_puts_the_batch_back_and_logs_each_whole_once() -> None:
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, max_batch=2)
    for i in range(3):
        w.submit(i)
    sink.down = True
    assert await w.flush() == 0 and await w.flush() == 0  # the same batch, twice
    assert (w.queued, w.failed, w.dropped) == (3, 2, 0)
    assert whole.lines == [(0, "not yet stored"), (1, "not yet stored")]  # once each
    sink.down = False
    assert await w.flush() == 2 and await w.flush() == 1
    assert sink.values == [0, 1, 2] and w.written == 3
    sink.down = True
    w.submit(0)  # written before: logged whole again if it fails again
    await w.flush()
    assert whole.lines[-1] == (0, "not yet stored")


async def test_retry_policy_full_queue_drops_its_oldest_into_the_log() -> None:
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, max_queue=2)
    for i in range(4):
        w.submit(i)
    assert (w.queued, w.dropped) == (2, 2)
    assert whole.lines == [(0, "dropped unwritten (the queue is full)"),
                           (1, "dropped unwritten (the queue is full)")]  # fmt: skip
    await w.flush()
    assert sink.values == [2, 3]


async def test_retry_policy_stop_writes_again_until_the_store_is_back() -> None:
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, flush_interval_s=0.01)
    w.submit(1)
    sink.down = True

    async def back() -> None:
        await asyncio.sleep(0.1)
        sink.down = False

    up = asyncio.ensure_future(back())
    await w.stop(timeout_s=30)
    await up
    assert sink.values == [1] and w.failed >= 1 and w.queued == 0
    assert whole.lines == [(1, "not yet stored")]


async def test_retry_policy_stop_logs_what_is_left_whole_at_its_timeout() -> None:
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, flush_interval_s=0.01)
    w.submit(1)
    w.submit(2)
    sink.down = True
    await w.stop(timeout_s=0.05)
    assert w.queued == 0 and sink.values == []
    # failed during the stop: logged whole then, once (the stop names them: the test below)
    assert whole.lines == [(1, "not yet stored"), (2, "not yet stored")]


class Hung(Sink):
    """A store call that never returns (a database whose network went silent)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def write(self, batch: list[int]) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_stop_with_a_hung_store_ends_at_its_timeout_logging_each_value_whole() -> None:
    """The retry policy's stop is bounded by ``timeout_s`` though the write never returns,
    and every value, the hung write's batch and the queue's rest, is logged whole (found
    2026-12-06, review38b: the stop waited until the stop watchdog's exit, and the queued
    values, never failed, were in no log)."""
    sink, whole = Hung(), Whole()
    w = retry(sink, whole, max_batch=2)
    for v in range(5):
        w.submit(v)
    await asyncio.wait_for(w.stop(timeout_s=0.2), timeout=10)
    assert sink.calls == 1
    assert sorted(whole.lines) == [(v, "not written before the gateway stopped") for v in range(5)]
    assert w.queued == 0


async def test_a_drop_writers_stop_with_a_hung_store_ends_counting_the_rest_dropped() -> None:
    """The drop policy's stop ends at ``timeout_s`` too: the queue's rest counted dropped
    (the hung batch counts itself should its write ever end)."""
    sink = Hung()
    w = drop(sink, max_batch=2)
    for v in range(5):
        w.submit(v)
    await asyncio.wait_for(w.stop(timeout_s=0.2), timeout=10)
    assert (sink.calls, w.dropped, w.written, w.queued) == (1, 3, 0, 0)


async def test_stop_with_a_hung_loop_write_logs_its_batch_whole() -> None:
    """The loop's own write hung when the stop came: its batch, out of the queue, is
    logged whole with what was queued after it."""
    sink, whole = Hung(), Whole()
    w = retry(sink, whole, max_batch=2, flush_interval_s=0.01)
    w.start()
    w.submit(1)
    for _ in range(500):
        if sink.calls:
            break
        await asyncio.sleep(0.01)
    w.submit(2)
    await asyncio.wait_for(w.stop(timeout_s=0.2), timeout=10)
    assert sorted(whole.lines) == [(1, "not written before the gateway stopped"),
                                   (2, "not written before the gateway stopped")]  # fmt: skip


async def test_a_full_queue_comes_back_to_its_bound_after_a_failed_batch_is_put_back() -> None:
    """Values queued during a write that then failed, its batch back at the head, leave
    the queue past ``max_queue``: the next submit drops the oldest down to it, as the
    receipts' writer did before the shared one (found 2026-12-06, review38b: one a
    submit, the queue stayed ``max_batch`` over its bound)."""
    whole = Whole()
    w: BatchWriter[int]

    async def write(batch: list[int]) -> None:
        w.submit(4)
        w.submit(5)
        raise ConnectionError("the database is away")

    policy = RetryOnFailure[int]("values", LOG, key=lambda v: v, log_whole=whole)
    w = BatchWriter(write, policy, max_queue=3, max_batch=2)
    for v in (1, 2, 3):
        w.submit(v)
    assert await w.flush() == 0
    assert w.queued == 5  # the batch back, 4 and 5 queued during its write
    w.submit(6)
    assert w.queued == 3 and w.dropped == 3
    # 1 and 2 were logged whole at their failed write, 3 whole now: each once
    assert whole.lines == [(1, "not yet stored"), (2, "not yet stored"),
                           (3, "dropped unwritten (the queue is full)")]  # fmt: skip


class HungThenFailing(Sink):
    """A store call that hangs until ``released``, then fails (a database whose silent
    connection is finally reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()
        self.calls = 0

    async def write(self, batch: list[int]) -> None:
        self.calls += 1
        await self.released.wait()
        raise ConnectionError("connection reset")


async def test_a_hung_write_that_fails_after_stop_does_not_log_its_batch_again() -> None:
    """Found 2026-12-06 (setup38): the stop logged the hung write's batch whole; when that
    write failed later, the retry policy logged each of its values whole a second time (and
    put them back in a queue nobody writes). Each value is logged whole once."""
    sink, whole = HungThenFailing(), Whole()
    w = retry(sink, whole, max_batch=2)
    for v in range(5):
        w.submit(v)
    await asyncio.wait_for(w.stop(timeout_s=0.2), timeout=10)
    assert sorted(whole.lines) == [(v, "not written before the gateway stopped") for v in range(5)]
    sink.released.set()
    for _ in range(100):  # the hung write, left running by the stop, ends and fails
        await asyncio.sleep(0)
    assert sink.calls == 1 and w.failed == 1
    assert sorted(v for v, _ in whole.lines) == list(range(5)), whole.lines  # (failed before:
    assert w.queued == 0  # 0 and 1 logged again, "not yet stored", and queued again)


async def test_a_hung_write_that_succeeds_after_stop_is_counted_written() -> None:
    """The other end of that write: the store took it late; nothing more is logged."""
    sink, whole, gate = Sink(), Whole(), asyncio.Event()

    async def late(batch: list[int]) -> None:
        await gate.wait()
        await sink.write(batch)

    w = BatchWriter(late, RetryOnFailure[int]("values", LOG, key=lambda v: v, log_whole=whole))
    w.submit(1)
    await asyncio.wait_for(w.stop(timeout_s=0.1), timeout=10)
    gate.set()
    for _ in range(100):
        await asyncio.sleep(0)
    assert whole.lines == [(1, "not written before the gateway stopped")]
    assert (sink.values, w.written, w.failed) == ([1], 1, 0)


async def test_a_value_failed_then_left_at_stop_is_logged_whole_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Session 38's note: a value whose write failed ("not yet stored", logged whole) and
    that was still unwritten at the stop's timeout was logged whole a second time ("not
    written before the gateway stopped"). Now whole once; the stop names it by its key."""
    caplog.set_level(logging.WARNING, logger=LOG.name)
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, flush_interval_s=0.01)
    w.submit(1)
    sink.down = True
    assert await w.flush() == 0
    w.submit(2)  # queued after the failure: never logged yet
    await w.stop(timeout_s=0.05)
    assert w.queued == 0 and sink.values == []
    assert sorted(whole.lines) == [(1, "not yet stored"), (2, "not yet stored")], whole.lines
    short = [r.getMessage() for r in caplog.records if "logged above" in r.getMessage()]
    assert short == [
        "values: 1 not written before the gateway stopped; its whole text is logged above",
        "values: 2 not written before the gateway stopped; its whole text is logged above",
    ]


async def test_a_value_failed_then_dropped_by_a_full_queue_is_logged_whole_once() -> None:
    sink, whole = Sink(), Whole()
    w = retry(sink, whole, max_queue=2)
    w.submit(1)
    sink.down = True
    assert await w.flush() == 0  # 1: "not yet stored"
    w.submit(2)
    w.submit(3)  # full: 1 dropped, logged whole before; then 2 would go next
    assert whole.lines == [(1, "not yet stored")]
    w.submit(4)  # 2 dropped: never logged before, so whole now
    assert whole.lines == [(1, "not yet stored"), (2, "dropped unwritten (the queue is full)")]


async def test_a_drop_writers_stop_names_the_values_of_a_write_left_hung(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The drop policy's stop with its only batch in a hung write (the queue empty then):
    its ERROR names those values, left to a write that may never end (found 2026-12-07,
    review39: nothing was said, the values counted nowhere should the process end)."""
    sink = Hung()
    w = drop(sink, max_batch=10)
    for v in range(3):
        w.submit(v)
    with caplog.at_level(logging.ERROR, logger="LLM_Mesh.registry.batch_writer"):
        await asyncio.wait_for(w.stop(timeout_s=0.2), timeout=10)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert said == [
        "llm-mesh-batch-writer: 0 values not written within the stop's 0.2 s; dropped; 3 more "
        "in a write left running (counted when it ends)"
    ], said
    assert (sink.calls, w.dropped, w.queued) == (1, 0, 0)  # counted by the write, if it ends
