"""The gateway's ``GET /metrics`` in prometheus-client's multiprocess mode (``registry serve
--workers N``, ``metrics_http.events_registry``): two registry apps, each its own "process"
(prometheus-client's value class with its own process id, as each worker's import chooses
it), sharing one directory: each one's scrape reads both one's requests and request records,
a worker that ended included, and every family once; and the states, gauges each worker
writes (``registry/metrics_states.py``), merged over the live workers: the sums summed, the
shared store's counts not multiplied, an ended or killed worker's taken out. The real
processes: ``tests/e2e/test_workers_metrics.py``.

Found 2026-12-04: the gauges were the answering worker's alone, so a dashboard jumped
between the workers' values from scrape to scrape."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from LLM_Mesh.metrics_http import WORKERS_METRICS_ENV, multiprocess_dir
from LLM_Mesh.registry import metrics as gateway_metrics
from LLM_Mesh.registry import metrics_states
from LLM_Mesh.registry.metrics_states import States, WorkerGauges
from tests.metrics_scrape import Scrape
from tests.registry.helpers import Harness, running
from tests.registry.test_metrics import CHAT, chat, scrape

WAITING, IN_FLIGHT = "llm_mesh_gateway_waiting_requests", "llm_mesh_gateway_in_flight_attempts"
NODES, EJECTED = "llm_mesh_gateway_nodes", "llm_mesh_gateway_nodes_ejected"


def _shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory, as the supervisor gives it to its workers."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    monkeypatch.setenv(WORKERS_METRICS_ENV, str(shared))
    return shared


def _as_worker(monkeypatch: pytest.MonkeyPatch, pid: int) -> None:
    """What follows runs as the stand-in process ``pid`` (its files, as its import chose)."""
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: pid))
    monkeypatch.setattr(metrics_states, "process_id", lambda: pid)


async def _scrape_as(monkeypatch: pytest.MonkeyPatch, h: Harness, pid: int) -> Scrape:
    _as_worker(monkeypatch, pid)
    return await scrape(h)


async def _worker(tmp_path: Path, pid: int, requests: int) -> tuple[float, float, list[str]]:
    """One worker's life: ``requests`` answers, its writer flushed, then one scrape:
    (requests, records written, the scrape's family names in order)."""
    async with running(tmp_path / f"w{pid}") as h:
        await h.register("n1")
        for _ in range(requests):
            assert (await h.client.post(CHAT, json=chat())).status_code == 200
        await h.runtime.writer.flush()
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_nodes", state="online") == 1  # its own, read now
        assert s.value("process_resident_memory_bytes") > 0  # the answering worker's
        return (s.value("llm_mesh_gateway_requests_total", outcome="ok"),
                s.value("llm_mesh_gateway_request_records_total", result="written"),
                [n for n, _t in s.families.items()])  # fmt: skip


async def test_each_worker_s_scrape_sums_every_worker_s_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = _shared(tmp_path, monkeypatch)
    assert multiprocess_dir() is None  # the value class was chosen at import: in memory
    _as_worker(monkeypatch, 101)
    assert multiprocess_dir() == str(shared)
    first = await _worker(tmp_path, 101, 3)
    assert first[:2] == (3, 3)
    _as_worker(monkeypatch, 102)
    requests, records, families = await _worker(tmp_path, 102, 2)
    assert (requests, records) == (5, 5)  # both workers' (the first has ended: still counted)
    assert len(families) == len(set(families))
    assert {"llm_mesh_gateway_requests", "llm_mesh_gateway_request_duration_seconds",
            "llm_mesh_gateway_request_records", "llm_mesh_gateway_nodes"} <= set(families)  # fmt: skip


def test_a_directory_someone_else_set_is_not_summed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` set by an operator for a lone registry: its own values,
    not the sum of whatever files that directory holds (stale ones of earlier runs)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv(WORKERS_METRICS_ENV, raising=False)
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 103))
    assert multiprocess_dir() is None
    monkeypatch.setenv(WORKERS_METRICS_ENV, str(tmp_path / "another"))
    assert multiprocess_dir() is None


async def test_each_scrape_merges_the_live_workers_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shared(tmp_path, monkeypatch)
    monkeypatch.setattr(metrics_states, "REFRESH_S", 3600.0)  # each worker's tick called here
    _as_worker(monkeypatch, 201)
    async with running(tmp_path / "w201") as a:
        await a.register("n1")
        _as_worker(monkeypatch, 202)
        async with running(tmp_path / "w202") as b:
            await b.register("n1")
            da, db = a.runtime.routing.demand, b.runtime.routing.demand
            for _ in range(2):
                da.wait_begin("m")
            da.begin("m")
            for _ in range(3):
                db.wait_begin("m")
            db.begin("m")
            db.begin("other")
            for h, pid in ((a, 201), (b, 202)):  # each one's periodic write
                _as_worker(monkeypatch, pid)
                assert h.runtime.metrics is not None and h.runtime.metrics.gauges is not None
                h.runtime.metrics.gauges.refresh()
            for h, pid in ((a, 201), (b, 202), (a, 201), (b, 202)):
                s = await _scrape_as(monkeypatch, h, pid)
                assert s.value(WAITING, model="m") == 2 + 3  # summed
                assert (s.value(IN_FLIGHT, model="m"), s.value(IN_FLIGHT, model="other")) == (2, 1)
                assert s.value(NODES, state="online") == 1  # the shared table: not 2
                assert s.value("llm_mesh_gateway_nodes_healthy") <= 1
                assert s.value(EJECTED) == 0
                assert s.families[WAITING] == "gauge" and s.families[NODES] == "gauge"
                assert not s.has(WAITING, pid="201") and not s.has(NODES, pid="202")
            da.wait_end("m")  # written at the scrape a answers, without a tick
            s = await _scrape_as(monkeypatch, a, 201)
            assert s.value(WAITING, model="m") == 1 + 3
            for _ in range(3):
                db.wait_end("m")
            s = await _scrape_as(monkeypatch, b, 202)
            assert s.value(WAITING, model="m") == 1  # a model no longer waited for: 0
            assert s.has(WAITING, model="m") and s.value(IN_FLIGHT, model="other") == 1
        s = await _scrape_as(monkeypatch, a, 201)  # b ended: its values out
        assert (s.value(WAITING, model="m"), s.value(IN_FLIGHT, model="other")) == (1, 0)
        assert s.value(IN_FLIGHT, model="m") == 1 and s.value(NODES, state="online") == 1


def _states(waiting: int, online: int) -> States:
    return States({NODES: {("online",): online}, WAITING: {("m",): waiting}})


def _merged(path: Path) -> Scrape:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
    return Scrape.parse(generate_latest(registry).decode())


def test_a_worker_killed_outright_drops_out_at_a_live_one_s_next_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = _shared(tmp_path, monkeypatch)
    live = {301, 302}
    _as_worker(monkeypatch, 301)
    first = WorkerGauges(str(shared), lambda: _states(2, 1), pid=301, alive=live.__contains__)
    _as_worker(monkeypatch, 302)
    WorkerGauges(str(shared), lambda: _states(3, 1), pid=302, alive=live.__contains__)
    s = _merged(shared)
    assert (s.value(WAITING, model="m"), s.value(NODES, state="online")) == (5, 1)
    first.sweep()
    assert _merged(shared).value(WAITING, model="m") == 5  # both there
    live.discard(302)  # SIGKILL: no stop, its files left
    assert _merged(shared).value(WAITING, model="m") == 5
    first.sweep()
    s = _merged(shared)
    assert (s.value(WAITING, model="m"), s.value(NODES, state="online")) == (2, 1)
    _as_worker(monkeypatch, 302)  # another process given the same id: none of the old values
    (shared / "gauge_livesum_302.db").write_bytes((shared / "gauge_livesum_301.db").read_bytes())
    WorkerGauges(str(shared), lambda: _states(0, 1), pid=302, alive=live.__contains__)
    assert _merged(shared).value(WAITING, model="m") == 2


def test_a_dead_workers_file_removed_by_another_worker_meanwhile_is_no_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two live workers sweep the same dead one's files each second: one removes a file
    the other has just listed (found 2026-12-04, review: ``FileNotFoundError`` out of
    ``sweep``, an ERROR with its traceback, and that turn's refresh skipped)."""
    from types import SimpleNamespace

    from prometheus_client import multiprocess

    shared = _shared(tmp_path, monkeypatch)
    _as_worker(monkeypatch, 401)
    gauges = WorkerGauges(str(shared), lambda: _states(1, 1), pid=401, alive=lambda _p: False)
    (shared / "gauge_livesum_402.db").write_bytes(b"")  # a dead worker's
    listed_then_gone = SimpleNamespace(glob=lambda pattern: [pattern.replace("*", "x")])
    monkeypatch.setattr(multiprocess, "glob", listed_then_gone)
    gauges.sweep()  # before: FileNotFoundError


def test_every_live_worker_s_memory_cpu_and_files_are_shown_by_pid_whichever_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``process_*`` are the answering worker's alone (found 2026-12-04: a worker that grew
    was seen only in the scrapes it answered); ``llm_mesh_worker_*`` hold every live
    worker's, one sample each by pid, and a worker killed outright drops out at the next
    sweep."""
    shared = _shared(tmp_path, monkeypatch)
    live = {601, 602}
    figures = {
        601: {"process_resident_memory_bytes": 50e6, "process_cpu_seconds_total": 1.5,
              "process_open_fds": 20.0},
        602: {"process_resident_memory_bytes": 70e6, "process_cpu_seconds_total": 2.5,
              "process_open_fds": 30.0, "process_max_fds": 1024.0},
    }  # fmt: skip
    made = {}
    for pid in (601, 602):
        _as_worker(monkeypatch, pid)
        made[pid] = WorkerGauges(str(shared), lambda: _states(0, 1), pid=pid,
                                 alive=live.__contains__, process=figures[pid].copy)  # fmt: skip
    s = _merged(shared)
    memory, cpu, fds = metrics_states.WORKER_GAUGES
    assert s.families[memory] == "gauge"
    assert (s.value(memory, pid="601"), s.value(memory, pid="602")) == (50e6, 70e6)
    assert (s.value(cpu, pid="601"), s.value(fds, pid="602")) == (1.5, 30.0)
    figures[601]["process_resident_memory_bytes"] = 90e6
    _as_worker(monkeypatch, 601)
    made[601].refresh()  # its next tick
    assert _merged(shared).value(memory, pid="601") == 90e6
    live.discard(602)  # SIGKILL: its files left until a live worker's sweep
    made[601].sweep()
    s = _merged(shared)
    assert s.value(memory, pid="601") == 90e6 and not s.has(memory, pid="602")


def test_a_worker_s_own_figures_are_read_from_the_process_collector() -> None:
    figures = metrics_states.read_process()
    assert figures["process_resident_memory_bytes"] > 1e6  # this test's own process
    assert figures["process_open_fds"] >= 3


async def test_node_label_values_a_worker_writes_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-06 (departed34): under ``--workers N`` a departed node's series cannot
    be removed (prometheus-client's files keep every label value written; ``retain`` drops
    nothing there), so churned node ids grew every scrape until the supervisor stopped. A
    worker now writes at most ``MULTIPROCESS_NODE_LABELS`` node label values; later nodes
    are counted under ``node="other"`` (their requests still counted, summed)."""
    _shared(tmp_path, monkeypatch)
    _as_worker(monkeypatch, 301)
    monkeypatch.setattr(gateway_metrics, "MULTIPROCESS_NODE_LABELS", 3)
    async with running(tmp_path / "w301") as h:
        for i in range(6):  # six ids, one after the other, each one request, then gone
            await h.register(f"churn{i}")
            assert (await h.client.post(CHAT, json=chat())).status_code == 200
            assert (await h.client.delete(f"/mesh/nodes/churn{i}")).status_code == 204
        s = await scrape(h)
    nodes = s.label_values("llm_mesh_gateway_requests_total", "node")
    assert nodes == {"churn0", "churn1", "churn2", "other"}
    assert s.value("llm_mesh_gateway_requests_total", node="other") == 3
    assert s.label_values("llm_mesh_gateway_attempts_total", "node") == nodes
