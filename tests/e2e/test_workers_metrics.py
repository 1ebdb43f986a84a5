"""``GET /metrics`` of ``llm-mesh registry serve --workers 2`` (real processes, PostgreSQL):
whichever worker answers a scrape, the per-request counters and histograms are both
workers' summed (prometheus-client's multiprocess mode, ``metrics_http.events_registry``).

Found 2026-12-04: each worker answered its own counters, so scrapes on new connections
(the kernel hands each to either worker) read one worker's total, then the other's, and
Prometheus took the drops for counter resets. Here 16 requests are sent on 16 connections
(all 16 reaching one worker has a chance of 2^-15), then 12 scrapes on new connections each
must all read 16 requests.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.test_replicas import _prepare, _wait
from tests.e2e.test_workers import _replicas, _workers, supervisor
from tests.metrics_scrape import Scrape

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REQUESTS = 16
MODEL = "no-such-model"  # no node serves it: each request is refused quickly, and counted


def _scrape(url: str) -> Scrape:
    r = httpx.get(url + "/metrics", timeout=10)  # a new connection each time
    assert r.status_code == 200, r.text
    return Scrape.parse(r.text)


def test_every_scrape_of_two_workers_reads_both_workers_requests(
    tmp_path: Path, pg_database_url: str
) -> None:
    home = tmp_path / "registry"
    _token, api_key, _account = _prepare(pg_database_url, [home])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup = supervisor(tmp_path, pg_database_url, port)
    try:
        sup.start()
        assert sup.proc is not None
        _wait(lambda: _replicas(pg_database_url) == (2, 2), 60, "two workers serving")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        codes = set()
        for _ in range(REQUESTS):  # httpx.post: a new connection each
            r = httpx.post(url + "/v1/chat/completions", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
            codes.add(r.status_code)
        assert codes and all(c >= 400 for c in codes), codes
        time.sleep(1.0)  # the request writers' flushes (every 0.5 s)

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

        metrics_dir = Path(next(
            line.split("=", 1)[1] for line in
            Path(f"/proc/{min(_workers(sup.proc.pid))}/environ").read_text().split("\0")
            if line.startswith("PROMETHEUS_MULTIPROC_DIR=")
        ))  # fmt: skip
        assert metrics_dir.stat().st_mode & 0o777 == 0o700
        sup.kill(signal.SIGTERM)
        assert not metrics_dir.exists()  # removed with the supervisor
    finally:
        sup.kill()
