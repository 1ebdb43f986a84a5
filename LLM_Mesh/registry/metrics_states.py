"""The gateway's states as gauges: read at scrape time in one process, written by each
worker of ``registry serve --workers N`` for every worker's scrape.

:func:`read_states` reads them (nodes by state, healthy and ejected: in all and from each
model's pool; the opt-in wait and attempts in flight per model). A lone registry yields them when scraped
(``metrics._StateCollector``): exact at that instant. In prometheus-client's multiprocess
mode a scrape reaches one worker, and a callback runs only there, so each worker writes its
own values into its files of the shared directory (:class:`WorkerGauges`: every
``REFRESH_S`` seconds on its event loop, a failed round said as every loop's,
``failed_rounds.RoundLog``, and at each scrape it answers), and the answer
merges the live workers' files, per gauge in the mode an operator expects:

- ``livesum`` for what each worker holds of its own, adding up: ``waiting_requests``,
  ``in_flight_attempts`` (the sum over the live workers);
- ``livemostrecent`` for what every worker reads from the same shared store:
  ``nodes`` by state, ``nodes_healthy`` (the value written last by a live worker, not N
  times it);
- ``livemax`` for ``nodes_ejected`` (and ``nodes_ejected_by_model``, per model): each
  worker's router ejects on its own traffic; the most of any live worker's; and for ``settle_sync_failing``: each worker syncs the store's
  log for its own settlement, 1 when any live worker's syncs fail.

Each worker also writes its own process figures (resident memory, CPU seconds, open files:
what ``process_*`` says of the one worker that answers a scrape) as ``liveall`` gauges,
one sample a live worker labelled with its ``pid`` (:data:`WORKER_GAUGES`), so the whole
gateway's memory is their sum and a worker that grows is seen whichever worker answers.

A worker's values drop out when it ends: it removes its files of live gauges at its
lifespan's stop (``prometheus_client.multiprocess.mark_process_dead``), and each worker
removes, every ``REFRESH_S``, those of a process that is no longer there (a worker killed
outright); a new worker first removes any left under its own process id.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

from prometheus_client import Gauge, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead
from prometheus_client.registry import Collector

from LLM_Mesh.core.balancer import Router
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry.demand import DemandTracker
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = [
    "GAUGES", "REFRESH_S", "WORKER_GAUGES", "States", "WorkerGauges", "process_alive",
    "read_process", "read_states",
]  # fmt: skip

log = logging.getLogger(__name__)

REFRESH_S = 1.0
process_id: Callable[[], int] = os.getpid  # what prometheus-client names this process's files by

Mode = Literal["livesum", "livemostrecent", "livemax"]

# name -> (help, labels, multiprocess mode): the one list both modes expose
GAUGES: dict[str, tuple[str, tuple[str, ...], Mode]] = {
    "llm_mesh_gateway_nodes": ("Nodes this gateway knows, by their state", ("state",),
                               "livemostrecent"),
    "llm_mesh_gateway_nodes_healthy": (
        "Nodes routable now (online, fresh heartbeat, last active check passed)", (),
        "livemostrecent",
    ),
    "llm_mesh_gateway_nodes_ejected": ("Nodes the router has ejected now", (), "livemax"),
    "llm_mesh_gateway_nodes_ejected_by_model": (
        "Nodes the router has ejected now from each model's pool (a node may be out of some "
        "of its models' pools and kept, rested, in those that cannot spare it), by model",
        ("model",), "livemax",
    ),
    "llm_mesh_gateway_waiting_requests": (
        "Requests held at this gateway with no node yet (the opt-in wait), by model",
        ("model",), "livesum",
    ),
    "llm_mesh_gateway_in_flight_attempts": (
        "This gateway's attempts on nodes not yet ended, by model", ("model",), "livesum",
    ),
    "llm_mesh_gateway_settle_sync_failing": (
        "1 while settlement's syncs of the SQLite store's log fail (from a failure until a "
        "sync works: the journal of answers not written is kept), else 0", (), "livemax",
    ),
}  # fmt: skip


# name -> (help, the process collector's sample it copies): each live worker's own, by pid
WORKER_GAUGES: dict[str, tuple[str, str]] = {
    "llm_mesh_worker_resident_memory_bytes": (
        "Resident memory of each live worker of registry serve --workers N, by pid",
        "process_resident_memory_bytes",
    ),
    "llm_mesh_worker_cpu_seconds": (
        "CPU seconds (user + system) each live worker has used, by pid",
        "process_cpu_seconds_total",
    ),
    "llm_mesh_worker_open_fds": (
        "Open file descriptors of each live worker, by pid", "process_open_fds",
    ),
}  # fmt: skip


def read_process(collector: ProcessCollector | None = None) -> dict[str, float]:
    """This process's figures, as prometheus-client's process collector reads them
    (``/proc/self``; on a system without it: none), by sample name."""
    source = ProcessCollector(registry=None) if collector is None else collector
    return {s.name: s.value for m in source.collect() for s in m.samples}


class States(NamedTuple):
    """One reading: each gauge's samples, label values -> value."""

    values: dict[str, dict[tuple[str, ...], float]]


def read_states(
    table: NodeTable, router: Router, demand: DemandTracker, sync_failing: bool = False
) -> States:
    """The gateway's states now (never per request: a walk over the node table);
    ``sync_failing``: settlement's syncs of the store's log fail now."""
    now = table.clock()
    by_state = dict.fromkeys((s.value for s in NodeState), 0)
    healthy = ejected = 0
    by_model: dict[str, int] = {}
    outliers = router.outliers
    for entry in table.entries():
        by_state[entry.state.value] = by_state.get(entry.state.value, 0) + 1
        healthy += table.healthy(entry, now)
        if outliers.is_ejected(entry.node_id):
            ejected += 1
            for m in entry.models:
                if router.ejected_for(entry.node_id, m):
                    by_model[m] = by_model.get(m, 0) + 1
    return States({
        "llm_mesh_gateway_nodes": {(s,): n for s, n in by_state.items()},
        "llm_mesh_gateway_nodes_healthy": {(): healthy},
        "llm_mesh_gateway_nodes_ejected": {(): ejected},
        "llm_mesh_gateway_nodes_ejected_by_model": {(m,): n for m, n in sorted(by_model.items())},
        "llm_mesh_gateway_waiting_requests": {(m,): n for m, n in sorted(demand.waiting.items())},
        "llm_mesh_gateway_in_flight_attempts": {
            (m,): n for m, n in sorted(demand.in_flight.items())
        },
        "llm_mesh_gateway_settle_sync_failing": {(): 1 if sync_failing else 0},
    })  # fmt: skip


def mark_process_dead(pid: int, path: str) -> None:
    """Remove ``pid``'s files of live gauges from ``path`` (prometheus-client's own). A file
    another worker's sweep removed between its listing and its removal is no fault (found
    2026-12-04, review: ``FileNotFoundError``); the listing is made again for the rest."""
    for _ in range(3):
        try:
            _mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
            return
        except FileNotFoundError:
            continue


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0: nothing sent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: there
        return True
    return True


class WorkerGauges(Collector):
    """This worker's states in the shared directory ``path`` (see the module docstring).

    Registered on the served registry before the directory's reader
    (``MultiProcessCollector``), it writes this worker's values at each scrape it answers
    and yields nothing itself: the merged values come from the files. ``pid`` is the id
    prometheus-client names this process's files by (:data:`process_id`); ``alive`` tells
    whether another id's process is still there."""

    def __init__(
        self, path: str, read: Callable[[], States], *, pid: int | None = None,
        alive: Callable[[int], bool] = process_alive, interval_s: float | None = None,
        process: Callable[[], dict[str, float]] = read_process,
    ) -> None:  # fmt: skip
        self.path, self.read, self.alive, self.process = path, read, alive, process
        self.interval_s = REFRESH_S if interval_s is None else interval_s
        self.pid = process_id() if pid is None else pid
        mark_process_dead(self.pid, path)  # an earlier process's, under this same id
        self.gauges = {
            name: Gauge(name, help_, list(labels), registry=None, multiprocess_mode=mode)
            for name, (help_, labels, mode) in GAUGES.items()
        }  # fmt: skip
        self.own = {
            name: (Gauge(name, help_, registry=None, multiprocess_mode="liveall"), sample)
            for name, (help_, sample) in WORKER_GAUGES.items()
        }  # fmt: skip
        self.seen: dict[str, set[tuple[str, ...]]] = {name: set() for name in GAUGES}
        # its rounds' failures, as every loop's (a round a second: first_only, loops43)
        self.round_log = RoundLog(log, "worker gauges", first_only=True)
        self._task: asyncio.Task[None] | None = None
        self.refresh()

    def describe(self) -> list[Metric]:
        return []  # its families are the directory reader's

    def collect(self) -> Iterator[Metric]:
        self.refresh()  # this worker's own part exact at the scrape it answers
        return iter(())

    def refresh(self) -> None:
        """Write this worker's values now (a label seen before and gone: 0, as a
        multiprocess value cannot be removed from the files)."""
        for name, samples in self.read().values.items():
            gauge, seen = self.gauges[name], self.seen[name]
            for labels in seen - samples.keys():
                samples[labels] = 0
            for labels, value in samples.items():
                (gauge.labels(*labels) if labels else gauge).set(value)  # mostrecent: stamped
            seen.update(samples)
        figures = self.process()
        for gauge, sample in self.own.values():
            if sample in figures:
                gauge.set(figures[sample])

    def sweep(self) -> None:
        """Remove the live gauges' files of processes no longer there."""
        for file in glob.glob(os.path.join(self.path, "gauge_live*_*.db")):
            ident = os.path.basename(file)[: -len(".db")].rsplit("_", 1)[-1]
            if ident.isdigit() and int(ident) != self.pid and not self.alive(int(ident)):
                mark_process_dead(int(ident), self.path)

    def tick(self) -> None:
        """One round of the loop: :meth:`sweep`, then :meth:`refresh` (a failed sweep skips
        no refresh), a failure said through :attr:`round_log`: a run's first failed round
        an ERROR with its traceback, the others at DEBUG, 60 s in one ERROR, its end one
        INFO (loops43: before, a traceback every second for as long as it failed, a full
        disk under the shared directory, say)."""
        failed: list[tuple[str, Exception]] = []
        for step in (self.sweep, self.refresh):
            try:
                step()
            except Exception as exc:  # never the loop's end: the next turn tries again
                failed.append((step.__name__, exc))
        if not failed:
            self.round_log.ok()
            return
        steps = " and ".join(name for name, _ in failed)
        then = f"tried again in {self.interval_s:g} s"
        self.round_log.failed(failed[-1][1], f"worker gauges: {steps} failed", then)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop refreshing, and take this worker's values out of every later scrape."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        mark_process_dead(self.pid, self.path)
