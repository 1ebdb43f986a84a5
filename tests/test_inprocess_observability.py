"""Metrics and logs across the real mesh in one process (gateway + sim nodes, no sockets):
the gateway's and the node's ``/metrics`` move with the same traffic, a crashed node shows
as a failover, and the gateway's and the node's request lines share the request id and
carry no prompt or output."""

from __future__ import annotations

import json
import logging
import secrets

import pytest

from LLM_Mesh.core.receipt import client_ledger_id
from LLM_Mesh.logs import TEXT_FORMAT, JsonFormatter
from LLM_Mesh.node.telemetry import REQUEST_LOGGER as NODE_LOGGER
from LLM_Mesh.registry.telemetry import REQUEST_LOGGER as GATEWAY_LOGGER
from tests.inprocess_mesh import ON_THE_MACHINE, InProcessMesh
from tests.metrics_scrape import Scrape


def test_gateway_and_node_metrics_and_lines_agree(
    inprocess_mesh: InProcessMesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mesh = inprocess_mesh
    good = mesh.add_node("gemma-3-270m", "good")
    mesh.add_node("mistral-7b", "doomed")
    marker = "MARKER-" + secrets.token_hex(8)
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": f"say {marker}"}]}
    with mesh.sync_client() as c:
        for i in range(3):
            r = c.post("/v1/chat/completions", json=body, headers={"X-Request-Id": f"rid-{i}"})
            assert r.status_code == 200, r.text
        r = c.post("/v1/chat/completions", json={**body, "stream": True})
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        mesh.stop_node("doomed", deregister=False)  # crashed: connections refused
        r = c.post("/v1/chat/completions", json={**body, "model": "mistral-7b"})
        assert r.status_code == 502  # the last node tried was unreachable
        gateway = Scrape.parse(c.get("/metrics", headers=ON_THE_MACHINE).text)
        node = Scrape.parse(c.get(good.url + "/metrics", headers=ON_THE_MACHINE).text)
    good_id = mesh.id_of("good")
    assert gateway.value("llm_mesh_gateway_requests_total", node=good_id, outcome="ok") == 4
    assert node.value("llm_mesh_node_requests_total", model="gemma-3-270m", outcome="ok") == 4
    assert node.value("llm_mesh_node_ttft_seconds_count") == 4
    assert gateway.value("llm_mesh_gateway_tokens_total", kind="completion") == node.value(
        "llm_mesh_node_tokens_total", kind="completion"
    )
    # the crashed node: refused connection, a failover decision, then nobody left
    doomed = mesh.id_of("doomed")
    assert gateway.value("llm_mesh_gateway_attempts_total", node=doomed,
                         outcome="connect_error") == 1  # fmt: skip
    assert gateway.value("llm_mesh_gateway_failovers_total", outcome="connect_error") == 1
    assert gateway.value("llm_mesh_gateway_failover_stops_total", reason="no_node") == 1
    assert gateway.value("llm_mesh_gateway_requests_total", model="mistral-7b", outcome="error",
                         code="upstream_error") == 1  # fmt: skip
    assert gateway.value("llm_mesh_gateway_nodes", state="online") == 2  # no heartbeat missed yet

    fmt = JsonFormatter()
    gw = [json.loads(fmt.format(r)) for r in caplog.records if r.name == GATEWAY_LOGGER]
    nd = [json.loads(fmt.format(r)) for r in caplog.records if r.name == NODE_LOGGER]
    assert len(gw) == 5 and len(nd) == 4
    # each node line has the id its node got: the gateway's, or the one made for a client's id
    assert {x["request_id"] for x in nd} == {
        x.get("node_request_id", x["request_id"]) for x in gw[:4]
    }
    own = {"rid-0", "rid-1", "rid-2"}  # the clients' ids: their hashes, never the ids
    assert {client_ledger_id(i) for i in own} <= {x["request_id"] for x in gw[:4]}
    assert not own & {x.get("request_id") for x in gw}
    assert not {"rid-0", "rid-1", "rid-2"} & {x["request_id"] for x in nd}  # never the client's
    assert all(x["node"] == good_id for x in nd)
    text = logging.Formatter(TEXT_FORMAT)
    assert marker not in "\n".join(text.format(r) + fmt.format(r) for r in caplog.records)
