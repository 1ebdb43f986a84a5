"""The worker gauges' loop (``registry/metrics_states.WorkerGauges``, ``--workers N``: each
worker writes its states to the shared directory every second): its failed rounds in the
log as every background loop's (``failed_rounds.RoundLog``, ``first_only``).

Found 2026-12-07 (loops43): each failed round was an ERROR with its traceback of its own
(``log.exception``), a second apart for as long as it failed (a full disk under the shared
directory, say), and no ERROR said it went on nor an INFO that it ended."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from LLM_Mesh.registry.metrics_states import States, WorkerGauges
from tests.registry.helpers import running
from tests.registry.test_metrics import scrape
from tests.registry.test_metrics_workers import _as_worker, _shared, _states

LOGGER = "LLM_Mesh.registry.metrics_states"
FAILED = "llm_mesh_gateway_loop_failed_rounds_total"


class _Full:
    """``read``: the states, but failing from its ``fail_from``-th call on, ``failing``
    times (a disk full, then room again)."""

    def __init__(self, fail_from: int, failing: int) -> None:
        self.calls, self.fail_from, self.failing = 0, fail_from, failing
        self.past = asyncio.Event()  # a read after the failing ones

    def __call__(self) -> States:
        self.calls += 1
        if self.calls > self.fail_from + self.failing:
            self.past.set()
        if self.fail_from <= self.calls < self.fail_from + self.failing:
            raise OSError(28, "No space left on device")
        return _states(1, 1)


async def test_ten_failed_rounds_are_one_error_then_one_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its loop run for real (a round a millisecond): 10 failed rounds say one ERROR with
    the traceback, the others at DEBUG, and the round that succeeds one INFO; before, 10
    ERRORs with 10 tracebacks."""
    shared = _shared(tmp_path, monkeypatch)
    _as_worker(monkeypatch, 601)
    read = _Full(fail_from=2, failing=10)  # the first read is the constructor's
    gauges = WorkerGauges(str(shared), read, pid=601, alive=lambda _p: True, interval_s=0.001)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    gauges.start()
    try:
        await asyncio.wait_for(read.past.wait(), 10.0)
    finally:
        await gauges.stop()
    said = [r for r in caplog.records if r.name == LOGGER and r.levelno > logging.DEBUG]
    assert [(r.levelno, r.getMessage()) for r in said[:1]] == [
        (logging.ERROR, "worker gauges: refresh failed; tried again in 0.001 s")
    ]
    assert said[0].exc_info is not None  # a bug's (or the disk's) traceback, once
    assert [r.levelno for r in said] == [logging.ERROR, logging.INFO]  # before: 10 ERRORs
    assert said[1].getMessage().startswith("worker gauges: recovered after 10 failed rounds")
    debug = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]
    assert len(debug) == 9


def test_a_failed_sweep_and_refresh_are_one_failed_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Both steps run each round (a failed sweep skips no refresh), one round said."""
    shared = _shared(tmp_path, monkeypatch)
    _as_worker(monkeypatch, 602)
    read = _Full(fail_from=2, failing=1)
    gauges = WorkerGauges(str(shared), read, pid=602, alive=lambda _p: True)

    def sweep() -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gauges, "sweep", sweep)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    gauges.tick()
    assert read.calls == 2  # the refresh ran after the failed sweep
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "worker gauges: sweep and refresh failed; tried again in 1 s"
    assert gauges.round_log.failing == 1


async def test_a_worker_s_gauges_loop_is_on_its_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declared by the gateway's metrics (``failed_rounds.HasRoundLogs``), so watched: on
    ``/metrics`` as ``worker_gauges`` from the start (one process: no such loop)."""
    _shared(tmp_path, monkeypatch)
    _as_worker(monkeypatch, 603)
    async with running(tmp_path / "w603") as h:
        assert h.runtime.metrics is not None
        (declared,) = h.runtime.metrics.round_logs()
        assert declared.label == "worker_gauges" and declared.watch is not None
        assert (await scrape(h)).value(FAILED, loop="worker_gauges") == 0
