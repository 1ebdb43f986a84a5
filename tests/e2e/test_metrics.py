"""Metrics and logs of real processes on loopback: a registry and a sim node started with
JSON logs (``LLM_MESH_LOG_FORMAT=json``); both ``/metrics`` are scraped and parsed with
prometheus-client's parser before and after traffic (answers, a stream, a refusal, a paused
node's failover); every line both processes wrote is a JSON object, each request has its
line on both sides with the same request id, and the prompt's marker is in no line."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.receipt import client_ledger_id
from tests.e2e.conftest import start_mesh
from tests.metrics_scrape import Scrape

pytestmark = pytest.mark.e2e

MODEL = "mistral-7b"


def _scrape(url: str) -> Scrape:
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return Scrape.parse(r.text)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            obj = json.loads(line)  # every line: one JSON object
            assert isinstance(obj, dict) and {"ts", "level", "logger", "msg"} <= obj.keys(), line
            out.append(obj)
    return out


def test_metrics_and_json_logs_of_real_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MESH_LOG_FORMAT", "json")
    home = tmp_path / "home"
    mesh = start_mesh(home, model=MODEL, engine="sim", node_args=["--sim-tokens-per-s", "2000"])
    marker = "MARKER-" + secrets.token_hex(8)
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"say {marker}"}],
            "max_tokens": 8}  # fmt: skip
    try:
        url, node_url = mesh.registry_url, mesh.node_url
        before_gw, before_node = _scrape(url), _scrape(node_url)
        assert before_gw.value("llm_mesh_gateway_requests_total") == 0
        assert before_gw.value("llm_mesh_gateway_nodes", state="online") == 1
        assert before_gw.value("llm_mesh_gateway_nodes_healthy") == 1
        assert before_node.value("llm_mesh_node_state", state="online") == 1
        assert before_node.value("llm_mesh_node_model_loaded", model=MODEL) == 1

        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(3):
                r = c.post("/v1/chat/completions", json=body, headers={"X-Request-Id": f"e2e-{i}"})
                assert r.status_code == 200, r.text
            r = c.post("/v1/chat/completions", json={**body, "stream": True})
            assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
            assert c.post("/v1/chat/completions", json={**body, "n": 5}).status_code == 400
            assert httpx.post(node_url + "/mesh/admin/pause", timeout=10).status_code == 200
            r = c.post("/v1/chat/completions", json=body)
            # the only node is paused: nobody else to try. The pause also sends a heartbeat at
            # once; if it reaches the gateway before this request, the gateway refuses without
            # trying the node, else the node refuses it: the counters below follow either way
            assert r.status_code == 503, r.text
            assert httpx.post(node_url + "/mesh/admin/resume", timeout=10).status_code == 200

        gw, node = _scrape(url), _scrape(node_url)
        node_id = mesh._node_id or ""
        assert gw.value("llm_mesh_gateway_requests_total", model=MODEL, node=node_id,
                        outcome="ok") == 4  # fmt: skip
        assert gw.value("llm_mesh_gateway_requests_total", outcome="refused",
                        code="limit_exceeded") == 1  # fmt: skip
        assert gw.value("llm_mesh_gateway_requests_total", outcome="error",
                        code="model_unavailable") == 1  # fmt: skip
        tried = gw.value("llm_mesh_gateway_attempts_total", node=node_id, outcome="unavailable")
        assert tried in (0, 1)  # the paused request reached the node, or the gateway knew
        assert gw.value("llm_mesh_gateway_failovers_total", outcome="unavailable") == tried
        assert gw.value("llm_mesh_gateway_request_duration_seconds_count", outcome="ok") == 4
        assert gw.value("llm_mesh_gateway_ttft_seconds_count") == 4
        assert gw.value("llm_mesh_gateway_tokens_per_second_count") == 4
        assert node.value("llm_mesh_node_requests_total", model=MODEL, outcome="ok") == 4
        assert node.value("llm_mesh_node_requests_total", model=MODEL, outcome="refused",
                          code="model_unavailable") == tried  # fmt: skip
        assert node.value("llm_mesh_node_ttft_seconds_count", model=MODEL) == 4
        assert gw.value("process_resident_memory_bytes") > 0
        assert node.value("process_resident_memory_bytes") > 0
    finally:
        mesh.stop()

    logs = home / "logs"
    gw_lines = [x for x in _json_lines(logs / "registry.log") if x["msg"] == "request"]
    node_lines = [x for x in _json_lines(logs / "node.log") if x["msg"] == "request"]
    assert len(gw_lines) == 6 and len(node_lines) == 4 + tried
    answered = [x for x in gw_lines if x["outcome"] == "ok"]
    # a line's id as its node got it: the gateway's own, or the one made for a client's id
    sent = {x.get("node_request_id", x["request_id"]) for x in answered}
    assert sent <= {x["request_id"] for x in node_lines}
    own = {"e2e-0", "e2e-1", "e2e-2"}  # the clients' ids: their hashes, never the ids
    assert {client_ledger_id(i) for i in own} <= {x["request_id"] for x in answered}
    assert not own & {x.get("request_id") for x in gw_lines}
    assert not {"e2e-0", "e2e-1", "e2e-2"} & {x["request_id"] for x in node_lines}
    for x in answered:
        assert x["node"] == node_id and x["status"] == 200 and x["attempts"] == 1
        assert x["latency_ms"] > 0 and x["ttft_ms"] > 0 and x["completion_tokens"] > 0
    for path in logs.iterdir():
        assert marker.encode() not in path.read_bytes(), path
