"""Every background loop's failed rounds on the replica's ``GET /metrics`` (issue 11,
"metrics where operators look"; alarm42): ``llm_mesh_gateway_loop_failed_rounds_total{loop}``
moves on each failed round, ``llm_mesh_gateway_loop_failing{loop}`` is 1 from the run's
ERROR (60 s into it) to its INFO. Before: the log's lines only. Read back with
prometheus-client's own parser (``tests/metrics_scrape.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from LLM_Mesh.registry.failed_rounds import RoundLog, loop_label
from LLM_Mesh.registry.metrics_loops import LoopMetrics
from LLM_Mesh.registry.poller import Poller
from tests.metrics_scrape import Scrape
from tests.registry.helpers import running
from tests.registry.test_metrics import scrape

FAILED = "llm_mesh_gateway_loop_failed_rounds_total"
FAILING = "llm_mesh_gateway_loop_failing"
LOG = logging.getLogger("tests.metrics_loops")


def _read(reg: CollectorRegistry) -> Scrape:
    return Scrape.parse(generate_latest(reg).decode())


def _fail(rounds: RoundLog) -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        rounds.failed(exc, "the round failed")


def test_a_failed_round_is_counted_and_a_run_past_the_alarm_is_failing_until_its_end() -> None:
    reg = CollectorRegistry()
    metrics = LoopMetrics(reg)
    now = [0.0]
    rounds = RoundLog(LOG, "the fake writer", clock=lambda: now[0], watch=metrics)
    s = _read(reg)  # watched: shown at 0 before it fails
    assert s.families[FAILED.removesuffix("_total")] == "counter"
    assert s.families[FAILING] == "gauge"
    assert s.has(FAILED, loop="fake_writer") and s.value(FAILED, loop="fake_writer") == 0
    assert s.has(FAILING, loop="fake_writer") and s.value(FAILING, loop="fake_writer") == 0
    _fail(rounds)
    assert _read(reg).value(FAILED, loop="fake_writer") == 1  # a failed round moves it
    for _ in range(29):  # a round every 2 s: 58 s, short of the alarm
        now[0] += 2.0
        _fail(rounds)
    s = _read(reg)
    assert (s.value(FAILED, loop="fake_writer"), s.value(FAILING, loop="fake_writer")) == (30, 0)
    now[0] += 2.0
    _fail(rounds)  # 60 s: the ERROR, and the gauge
    s = _read(reg)
    assert (s.value(FAILED, loop="fake_writer"), s.value(FAILING, loop="fake_writer")) == (31, 1)
    rounds.ok()  # the INFO: 0 again, the count kept
    s = _read(reg)
    assert (s.value(FAILED, loop="fake_writer"), s.value(FAILING, loop="fake_writer")) == (31, 0)


def test_the_loop_labels() -> None:
    assert loop_label("the requests writer") == "requests_writer"
    assert loop_label("llm-mesh-replica-beat") == "replica_beat"
    assert loop_label("health-check leases") == "health_check_leases"
    assert loop_label("usage audit") == "usage_audit"


class _Owner:
    """A part that declares its loops (``failed_rounds.HasRoundLogs``)."""

    def __init__(self, *logs: RoundLog) -> None:
        self.logs = logs
        self.hidden = RoundLog(LOG, "hidden")  # held, not declared: not watched

    def round_logs(self) -> tuple[RoundLog, ...]:
        return self.logs


def test_watch_takes_what_each_part_declares_once_and_nothing_it_does_not() -> None:
    metrics = LoopMetrics(CollectorRegistry())
    a, b = RoundLog(LOG, "a"), RoundLog(LOG, "b")
    owner, p = _Owner(a, b, a), Poller()
    assert metrics.watch([owner, None, p, _Owner(b)]) == 3  # a, b, the poller's; each once
    assert a.watch is metrics and b.watch is metrics and p.round_log.watch is metrics
    assert owner.hidden.watch is None  # before (reflection): found in its attributes


async def test_the_replicas_loops_are_on_its_metrics_and_a_failed_poll_moves_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as h:
        s = await scrape(h)
        loops = s.label_values(FAILED, "loop")
        assert {"revocations", "key_revocations", "quality", "requests_writer",
                "ledger_checkpointer"} <= loops, loops  # fmt: skip
        assert all(s.value(FAILED, loop=name) == 0 for name in loops)
        assert s.label_values(FAILING, "loop") == loops
        revocations = h.app.state.store_polls["revocations"]

        async def away() -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        monkeypatch.setattr(revocations, "poll", away)
        await revocations.tick()
        s = await scrape(h)
        assert s.value(FAILED, loop="revocations") == 1
        assert s.value(FAILED, loop="key_revocations") == 0
