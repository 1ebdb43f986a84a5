"""The background loops' failed rounds on the replica's ``/metrics`` (issue 11, "metrics
where operators look"; alarm42): :class:`LoopMetrics`, the
:class:`~LLM_Mesh.registry.failed_rounds.LoopWatch` the app gives every loop's
``RoundLog`` (injected: ``core/`` and the loops import no metric).

- ``llm_mesh_gateway_loop_failed_rounds_total{loop}``: each failed round of ``loop`` (the
  store polls, the settlement's rounds, the writers, the checkpointer, ...; ``loop``: the
  RoundLog's ``label``, "the requests writer" as ``requests_writer``); a child made, at 0,
  when the loop is watched, so a loop that never failed shows too.
- ``llm_mesh_gateway_loop_failing{loop}``: 1 from the run's ERROR (60 s into it, at least
  its second round: ``core/round_alarm.py``) until its INFO (the first round that
  succeeds), else 0: what an alert reads, as the log's ERROR.

``registry serve --workers N`` (prometheus-client's multiprocess mode): every worker runs
its own loops; the counter is every worker's summed, the gauge the most of the live
workers' (``livemax``: 1 while any worker's loop is failing past the alarm).

What is watched is declared: :meth:`LoopMetrics.watch` takes parts that name their loops'
logs (``failed_rounds.HasRoundLogs``: ``round_logs()``), and watches those, no others; the
app gives it each part it starts (``app_stops.Stops``' ``on_start``, typed: a part started
declares its loops, none too) and the few it does not start itself (loops42: before, the
logs were found by reflection, a part's attributes and one level below, and a loop out of
its reach, the settlement writer's, went unwatched: review42b;
``tests/registry/test_metrics_loops_all.py`` walks every object the app holds).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from LLM_Mesh.registry.failed_rounds import HasRoundLogs

__all__ = ["FAILED_ROUNDS", "FAILING", "LoopMetrics"]

FAILED_ROUNDS = "llm_mesh_gateway_loop_failed_rounds"
FAILING = "llm_mesh_gateway_loop_failing"


class LoopMetrics:
    """The loops' metrics (module docstring); ``reg``: where the counter and gauge are
    registered (``None``: several processes, read from their files)."""

    def __init__(self, reg: CollectorRegistry | None) -> None:
        self._failed = Counter(
            FAILED_ROUNDS,
            "Failed rounds of a background loop on the store (a poll, a batch written, a "
            "settlement round, ...), by loop",
            ["loop"], registry=reg,
        )  # fmt: skip
        self._failing = Gauge(
            FAILING,
            "1 while a background loop's run of failed rounds has lasted past the alarm (60 s, "
            "its ERROR line) until a round succeeds (its INFO line), else 0; by loop",
            ["loop"], registry=reg, multiprocess_mode="livemax",
        )  # fmt: skip

    def watched(self, loop: str) -> None:
        """``loop``'s children made (0 until it fails)."""
        self._failed.labels(loop)
        self._failing.labels(loop).set(0)

    def failed_round(self, loop: str) -> None:
        self._failed.labels(loop).inc()

    def failing(self, loop: str, alarmed: bool) -> None:
        self._failing.labels(loop).set(1 if alarmed else 0)

    def watch(self, parts: Iterable[HasRoundLogs | None]) -> int:
        """Every loop each of ``parts`` declares (its ``round_logs()``; ``None``: a part the
        app runs without) told to this, each once; how many."""
        seen: set[int] = set()
        for part in parts:
            if part is None:
                continue
            for log in part.round_logs():
                if id(log) not in seen:
                    seen.add(id(log))
                    log.watch = self
        return len(seen)
