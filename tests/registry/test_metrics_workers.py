"""The gateway's ``GET /metrics`` in prometheus-client's multiprocess mode (``registry serve
--workers N``, ``metrics_http.events_registry``): two registry apps, each its own "process"
(prometheus-client's value class with its own process id, as each worker's import chooses
it), sharing one directory: each one's scrape reads both one's requests and request records,
a worker that ended included, and every family once. The real processes:
``tests/e2e/test_workers_metrics.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import values

from LLM_Mesh.metrics_http import WORKERS_METRICS_ENV, multiprocess_dir
from tests.registry.helpers import running
from tests.registry.test_metrics import CHAT, chat, scrape


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
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    monkeypatch.setenv(WORKERS_METRICS_ENV, str(shared))  # as the supervisor sets both
    assert multiprocess_dir() is None  # the value class was chosen at import: in memory
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 101))
    assert multiprocess_dir() == str(shared)
    first = await _worker(tmp_path, 101, 3)
    assert first[:2] == (3, 3)
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 102))
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
