"""A node's request log line: one per request, the gateway's request id, model, status,
outcome and timings; never the prompt or the output (a marker is searched for in every
record of every logger, in both formats)."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.logs import TEXT_FORMAT, JsonFormatter
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.telemetry import REQUEST_LOGGER, outcome_of
from tests.node.conftest import MODEL, NODE_URL, sim_engine, started_service

FIELDS = {"request_id", "node", "path", "model", "stream", "status", "outcome", "latency_ms"}


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == REQUEST_LOGGER]


async def test_lines_carry_the_gateways_id_and_timings_never_the_text(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "MARKER-" + secrets.token_hex(8)
    svc = await started_service(settings)
    transport = httpx.ASGITransport(app=create_node_app(svc), client=("127.0.0.1", 1))
    chat = {"model": MODEL, "messages": [{"role": "user", "content": f"repeat {marker}"}]}
    completion = {"model": MODEL, "prompt": f"{marker} ", "echo": True, "max_tokens": 5}
    async with httpx.AsyncClient(transport=transport, base_url=NODE_URL) as c:
        r = await c.post("/v1/chat/completions", json=chat, headers={"X-Request-Id": "req-n1"})
        assert r.status_code == 200
        r = await c.post("/v1/completions", json={**completion, "stream": True})
        assert r.status_code == 200 and marker in r.text  # the output holds it
        r = await c.post("/v1/completions", json=completion)
        assert marker in r.text
        r = await c.post("/v1/chat/completions", json={**chat, "model": marker})
        assert r.status_code == 404
        long_id = "x" * 500
        r = await c.post("/v1/chat/completions", json=chat, headers={"X-Request-Id": long_id})
        assert r.status_code == 200
    await svc.stop()
    got = lines(caplog)
    assert len(got) == 5
    first, stream, whole, missing, unnamed = got
    assert first.keys() >= FIELDS
    assert first["request_id"] == "req-n1" and first["node"] == svc.node_id
    assert first["path"] == "/v1/chat/completions" and first["model"] == MODEL
    assert first["status"] == 200 and first["outcome"] == "ok" and first["stream"] is False
    assert {"ttft_ms", "wait_ms", "prompt_tokens", "completion_tokens"} <= first.keys()
    assert first["completion_tokens"] > 0
    assert stream["stream"] is True and stream["outcome"] == "ok"
    assert whole["outcome"] == "ok"
    assert missing["status"] == 404 and missing["outcome"] == "rejected"
    assert missing["code"] == "model_not_found" and "model" not in missing
    assert "request_id" not in unnamed  # an id no sane gateway sends is not logged
    text, js = logging.Formatter(TEXT_FORMAT), JsonFormatter()
    everything = "\n".join(text.format(r) + js.format(r) for r in caplog.records)
    assert marker not in everything
    assert long_id not in everything


def test_outcomes_of_statuses() -> None:
    assert [outcome_of(s) for s in (429, 503, 400, 401, 404, 413, 499, 500, 502)] == [
        "refused", "refused", "rejected", "rejected", "rejected", "rejected", "cancelled",
        "error", "error",
    ]  # fmt: skip


async def test_log_requests_off(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    svc = await started_service(Settings(home=tmp_path, log_requests=False), sim_engine())
    transport = httpx.ASGITransport(app=create_node_app(svc), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url=NODE_URL) as c:
        r = await c.post("/v1/chat/completions", json={"model": MODEL, "messages": [
            {"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 200
    await svc.stop()
    assert lines(caplog) == []
