"""``GET /metrics`` of ``llm-mesh registry serve --workers 2`` (real processes, PostgreSQL):
whichever worker answers a scrape, the per-request counters and histograms are both
workers' summed (prometheus-client's multiprocess mode, ``metrics_http.events_registry``).

Found 2026-12-04: each worker answered its own counters, so scrapes on new connections
(the kernel hands each to either worker) read one worker's total, then the other's, and
Prometheus took the drops for counter resets. Here 16 requests are sent on 16 connections
(all 16 reaching one worker has a chance of 2^-15), then 12 scrapes on new connections each
must all read 16 requests.

Found 2026-12-04 too: the state gauges were the answering worker's alone. Here a slow sim
node (SIMULATED) holds 6 requests sent on 6 connections; every scrape while they run must
read 6 attempts in flight (both workers' summed) and 1 online node (the shared table, not
2); then a worker killed with SIGKILL has its gauge files removed by the live one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.replica_mesh import (
    SIM,
    Proc,
    healthy_ids,
    node_id,
    prepare_store,
    replica_env,
    wait_for,
)
from tests.e2e.test_workers import _replicas, _workers, supervisor
from tests.metrics_scrape import Scrape
from tests.waiting import SOON_S, START_S, scaled

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REQUESTS = 16
MODEL = "no-such-model"  # no node serves it: each request is refused quickly, and counted


def _scrape(url: str) -> Scrape:
    r = httpx.get(url + "/metrics", timeout=10)  # a new connection each time
    assert r.status_code == 200, r.text
    return Scrape.parse(r.text)


def _metrics_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_text().split("\0")
    return Path(next(v.split("=", 1)[1] for v in environ
                     if v.startswith("PROMETHEUS_MULTIPROC_DIR=")))  # fmt: skip


def test_every_scrape_of_two_workers_reads_both_workers_requests(
    tmp_path: Path, pg_database_url: str
) -> None:
    home = tmp_path / "registry"
    _token, api_key, _account = prepare_store(pg_database_url, [home])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup = supervisor(tmp_path, pg_database_url, port)
    try:
        sup.start()
        assert sup.proc is not None
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 2), scaled(START_S), "two workers serving"
        )
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        codes = set()
        for _ in range(REQUESTS):  # httpx.post: a new connection each
            r = httpx.post(url + "/v1/chat/completions", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
            codes.add(r.status_code)
        assert codes and all(c >= 400 for c in codes), codes

        def flushed() -> bool:  # the request writers' flushes (every 0.5 s) seen: two scrapes
            a = _scrape(url)  # a flush apart read every request and the same records
            time.sleep(0.6)  # (a fixed 1 s was not always enough on a loaded box: flaky36)
            b = _scrape(url)
            read = [(s.value("llm_mesh_gateway_requests_total", code="model_not_found"),
                     s.value("llm_mesh_gateway_request_records_total")) for s in (a, b)]  # fmt: skip
            return read[0] == read[1] and read[0][0] == REQUESTS

        wait_for(flushed, scaled(SOON_S), "the request writers' flushes")

        scrapes = [_scrape(url) for _ in range(12)]
        totals = [
            s.value("llm_mesh_gateway_requests_total", code="model_not_found") for s in scrapes
        ]
        assert totals == [REQUESTS] * len(scrapes), totals
        records = {s.value("llm_mesh_gateway_request_records_total") for s in scrapes}
        assert len(records) == 1, records  # every scrape: both writers' counts
        first = scrapes[0]
        assert first.families["llm_mesh_gateway_requests"] == "counter"
        assert first.families["llm_mesh_gateway_request_records"] == "counter"
        assert first.has("llm_mesh_gateway_nodes", state="online")  # the answering worker's
        assert first.has("process_cpu_seconds_total")
        # every loop's failed rounds (alarm42): the workers' files, a child at 0 a loop
        assert first.families["llm_mesh_gateway_loop_failed_rounds"] == "counter"
        assert first.families["llm_mesh_gateway_loop_failing"] == "gauge"
        assert first.has("llm_mesh_gateway_loop_failing", loop="revocations")
        assert first.value("llm_mesh_gateway_loop_failed_rounds_total", loop="revocations") == 0
        pids = {str(pid) for pid in _workers(sup.proc.pid)}
        for s in scrapes:  # every live worker's own memory, whichever answered
            shown = {pid for pid in pids if s.value("llm_mesh_worker_resident_memory_bytes",
                                                    pid=pid) > 1e6}  # fmt: skip
            assert shown == pids and len(pids) == 2, (shown, pids)

        metrics_dir = _metrics_dir(min(_workers(sup.proc.pid)))
        assert metrics_dir.stat().st_mode & 0o777 == 0o700
        sup.kill(signal.SIGTERM)
        assert not metrics_dir.exists()  # removed with the supervisor
    finally:
        sup.kill()


HELD = 6


def _held(url: str) -> float:
    return _scrape(url).value("llm_mesh_gateway_in_flight_attempts", model=SIM)


def test_every_scrape_of_two_workers_reads_both_workers_gauges(
    tmp_path: Path, pg_database_url: str
) -> None:
    home = tmp_path / "registry"
    token, api_key, _account = prepare_store(pg_database_url, [home])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup = supervisor(tmp_path, pg_database_url, port, "--allow-private-nodes")
    node_home = tmp_path / "node"
    node_home.mkdir()
    node = Proc(
        "node",
        ["node", "start", "--registry", url, "--host", "127.0.0.1", "--port", str(free_port()),
         "--no-config", "--model", SIM, "--engine", "sim", "--sim-tokens-per-s", "5",
         "--sim-ttft-s", "0.01", "--max-concurrency", str(2 * HELD)],
        replica_env(node_home, LLM_MESH_OPERATOR_TOKEN=token), tmp_path / "node.log",
    )  # fmt: skip
    answers: list[int] = []

    def ask() -> None:  # a new connection: either worker takes it; ~12 s at 5 tokens/s
        body = {"model": SIM, "max_tokens": 60, "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
        answers.append(r.status_code)

    try:
        sup.start()
        assert sup.proc is not None
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 2), scaled(START_S), "two workers serving"
        )
        node.start()
        nid = node_id(node_home)
        wait_for(
            lambda: all(nid in healthy_ids(url) for _ in range(8)), scaled(START_S), "node healthy"
        )
        threads = [threading.Thread(target=ask) for _ in range(HELD)]
        for t in threads:
            t.start()
        # all sent, and each worker's gauges written since (every second): seen, not slept
        # for (a fixed 2 s was not always enough on a loaded box: flaky36)
        wait_for(lambda: _held(url) == HELD, scaled(SOON_S), f"{HELD} attempts in flight")
        scrapes = [_scrape(url) for _ in range(10)]
        for t in threads:
            t.join(60)
        assert answers == [200] * HELD, answers
        in_flight = [s.value("llm_mesh_gateway_in_flight_attempts", model=SIM) for s in scrapes]
        assert in_flight == [HELD] * len(scrapes), in_flight  # both workers' summed
        online = [s.value("llm_mesh_gateway_nodes", state="online") for s in scrapes]
        assert online == [1] * len(scrapes), online  # the shared table, not 2
        assert all(s.value("llm_mesh_gateway_nodes_healthy") == 1 for s in scrapes)
        assert not any(s.has("llm_mesh_gateway_nodes", pid=str(p)) for s in scrapes
                       for p in _workers(sup.proc.pid))  # fmt: skip
        # every answer in, and the gauges written since (a fixed 1.5 s before: flaky36)
        wait_for(lambda: _held(url) == 0, scaled(SOON_S), "no attempt in flight")
        after = [_held(url) for _ in range(6)]
        assert after == [0] * 6, after

        victim = min(_workers(sup.proc.pid))
        metrics_dir = _metrics_dir(victim)
        assert list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not list(metrics_dir.glob(f"gauge_live*_{victim}.db")), scaled(SOON_S),
              "the killed worker's gauge files removed")  # fmt: skip
        sup.kill(signal.SIGTERM)
    finally:
        node.kill()
        sup.kill()
