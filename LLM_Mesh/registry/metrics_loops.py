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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge

from LLM_Mesh.registry.failed_rounds import RoundLog

__all__ = ["FAILED_ROUNDS", "FAILING", "LoopMetrics", "round_logs"]

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

    def watch(self, parts: Iterable[object]) -> int:
        """Every loop of ``parts`` (:func:`round_logs`) told to this; how many."""
        n = 0
        for log in round_logs(parts):
            log.watch = self
            n += 1
        return n


def round_logs(parts: Iterable[object]) -> Iterator[RoundLog]:
    """The ``RoundLog``\\ s of ``parts`` (the app's loops): a part's own attributes (a
    poller's ``round_log``, made when first read; a writer's, in its policy; the health
    checker's, in its leases) and one level below, each once."""
    seen: set[int] = set()
    for part in parts:
        if part is None:
            continue
        found = [getattr(part, "round_log", None)]  # the pollers' (a property)
        for value in vars(part).values():
            found.append(value)
            if not isinstance(value, RoundLog) and hasattr(value, "__dict__"):
                found.extend(vars(value).values())
        for value in found:
            if isinstance(value, RoundLog) and id(value) not in seen:
                seen.add(id(value))
                yield value
