"""The gateway's ``GET /metrics``: scraped, parsed with prometheus-client's own parser, and
checked to move with traffic (answers, refusals, failovers, retries, ejections, stops,
mid-stream continuations), to show the node table's states at scrape time, and to be
per app, switchable and access-controlled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.registry.metrics import code_label
from tests.metrics_scrape import Scrape
from tests.registry.helpers import FakeNode, FakeNodes, Harness, running
from tests.registry.test_midstream import Dies, completion_chunks

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
# /metrics answers a loopback client only under a loopback Host (core/browser_origin.py:
# DNS rebinding); the harness's client says "mesh"
LOCAL = {"Host": "127.0.0.1:8800"}


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **kw}


async def scrape(h: Harness) -> Scrape:
    r = await h.client.get("/metrics", headers=LOCAL)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape.parse(r.text)


async def first_on(h: Harness, first: str, other: str, body: dict[str, Any]) -> httpx.Response:
    """Send ``body`` with ``other`` looking busy, so the router tries ``first`` first."""
    busy = h.runtime.routing.begin(other, MODEL)
    try:
        return await h.client.post(CHAT if "messages" in body else "/v1/completions", json=body)
    finally:
        h.runtime.routing.finish(busy, Outcome.CANCELLED)


async def test_an_answer_moves_the_request_counters_and_histograms(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        before = await scrape(h)
        assert before.value("llm_mesh_gateway_requests_total") == 0
        assert before.families["llm_mesh_gateway_request_duration_seconds"] == "histogram"
        for _ in range(3):
            h.clock.advance(0.0)
            assert (await h.client.post(CHAT, json=chat())).status_code == 200
        s = await scrape(h)
        ok = {"model": MODEL, "node": "n1", "outcome": "ok", "code": ""}
        assert s.value("llm_mesh_gateway_requests_total", **ok) == 3
        assert s.value("llm_mesh_gateway_request_duration_seconds_count",
                       model=MODEL, outcome="ok") == 3  # fmt: skip
        assert s.value("llm_mesh_gateway_ttft_seconds_count", model=MODEL) == 3
        # the fake node's usage: 10 prompt and 5 completion tokens per answer
        assert s.value("llm_mesh_gateway_tokens_total", model=MODEL, kind="prompt") == 30
        assert s.value("llm_mesh_gateway_tokens_total", model=MODEL, kind="completion") == 15
        assert s.value("llm_mesh_gateway_attempts_total", node="n1", outcome="success") == 3
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="succeeded") == 3
        assert s.value("llm_mesh_gateway_failovers_total") == 0
        assert s.value("llm_mesh_gateway_retries_total") == 0


async def test_tokens_per_second_is_observed_when_time_passes(tmp_path: Path) -> None:
    nodes = FakeNodes()
    async with running(tmp_path, nodes=nodes) as h:
        nodes.on_call = lambda _node: h.clock.advance(0.5)  # each answer takes 0.5 s
        await h.register("n1")
        assert (await h.client.post(CHAT, json=chat())).status_code == 200
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_tokens_per_second_count", model=MODEL) == 1
        assert s.value("llm_mesh_gateway_request_duration_seconds_sum", model=MODEL) == 0.5
        # 5 tokens in the 0.5 s less the estimated ttft: above 10 tokens/s
        assert s.value("llm_mesh_gateway_tokens_per_second_bucket", model=MODEL, le="10.0") == 0


async def test_a_refusing_node_is_a_failover(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=3) as h:
        busy_node = await h.register("busy", behavior="429")
        await h.register("good")
        r = await first_on(h, "busy", "good", chat())
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "good"
        assert len(busy_node.calls) == 1
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_failovers_total", outcome="overloaded") == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="busy", outcome="overloaded") == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="good", outcome="success") == 1
        assert s.value("llm_mesh_gateway_requests_total", node="good", outcome="ok") == 1
        assert s.value("llm_mesh_gateway_ejections_total") == 0  # a refusal ejects nobody
        assert s.value("llm_mesh_gateway_retries_total") == 0


async def test_a_failing_node_is_a_retry_and_an_ejection(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=3) as h:
        bad = await h.register("busy", behavior="500")
        await h.register("good")
        r = await first_on(h, "busy", "good", chat())
        assert r.status_code == 200 and len(bad.calls) == 1
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_failovers_total") == 0
        assert s.value("llm_mesh_gateway_retries_total", outcome="server_error") == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="busy", outcome="server_error") == 1
        assert s.value("llm_mesh_gateway_ejections_total", node="busy") == 1
        assert s.value("llm_mesh_gateway_nodes_ejected") == 1


async def test_a_refusal_another_node_overrules_is_a_blame_and_an_ejection(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        bad = await h.register("bad", behavior="400")
        await h.register("good")
        r = await first_on(h, "bad", "good", chat())
        assert r.status_code == 200 and len(bad.calls) == 1
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_attempts_total", node="bad", outcome="rejected") == 1
        assert s.value("llm_mesh_gateway_failovers_total", outcome="rejected") == 1
        assert s.value("llm_mesh_gateway_refusals_blamed_total", node="bad") == 1
        assert s.value("llm_mesh_gateway_ejections_total", node="bad") == 1
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="succeeded") == 1
        assert s.value("llm_mesh_gateway_requests_total", node="good", outcome="ok") == 1
        # uptime credit: the blamed refusal counts against "bad", the answer for "good"
        b, g = h.table.get("bad"), h.table.get("good")
        assert b is not None and (b.answered, b.refused) == (0.0, 1.0)
        assert g is not None and (g.answered, g.refused) == (1.0, 0.0)


async def test_a_refusal_both_nodes_give_stops_as_rejected(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", behavior="400")
        await h.register("b", behavior="400")
        assert (await h.client.post(CHAT, json=chat())).status_code == 400
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="rejected") == 1
        assert s.value("llm_mesh_gateway_attempts_total", outcome="rejected") == 2
        assert s.value("llm_mesh_gateway_refusals_blamed_total") == 0
        assert s.value("llm_mesh_gateway_ejections_total") == 0
        # a 4xx nobody overruled (the request was bad) costs no uptime credit
        assert all(e.refused == 0 for e in h.table.entries())


async def test_errors_and_no_node_count_with_their_codes_and_stop_reasons(tmp_path: Path) -> None:
    async with running(tmp_path / "a", max_attempts=2) as h:
        r = await h.client.post(CHAT, json=chat())  # nobody serves it yet: refused at once
        assert r.status_code == 503
        await h.register("bad1", behavior="500")
        await h.register("bad2", behavior="500")
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 502
        node = r.json()["error"]["node_id"]
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_requests_total", model=MODEL, node="",
                       outcome="error", code="model_unavailable") == 1  # fmt: skip
        assert s.value("llm_mesh_gateway_requests_total", model=MODEL, node=node,
                       outcome="error", code="upstream_error") == 1  # fmt: skip
        # a request no node could take at all never entered the failover loop
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="no_node") == 0
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="max_attempts") == 1
        assert s.value("llm_mesh_gateway_request_duration_seconds_count", outcome="error") == 2
        assert s.value("llm_mesh_gateway_ttft_seconds_count") == 0  # no answer, no ttft
    async with running(tmp_path / "b", max_attempts=3) as h:
        await h.register("bad1", behavior="500")
        await h.register("bad2", behavior="500")
        assert (await h.client.post(CHAT, json=chat())).status_code == 502
        s = await scrape(h)  # both failed, a third attempt was allowed: no node was left
        assert s.value("llm_mesh_gateway_failover_stops_total", reason="no_node") == 1
        # two decisions to retry (after each failure); the second found nobody left
        assert s.value("llm_mesh_gateway_retries_total", outcome="server_error") == 2


async def test_refusals_before_the_send_stage_and_replays(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        assert (await h.client.post(CHAT, content=b"{not json")).status_code == 400
        r = await h.client.post(CHAT, json=chat(model="no-such-model-xyz"))
        assert r.status_code == 404
        bad_key = {"Authorization": "Bearer lmk_not-a-key"}
        assert (await h.client.post(CHAT, json=chat(), headers=bad_key)).status_code == 401
        once = {"Idempotency-Key": "metrics-replay-1"}
        assert (await h.client.post(CHAT, json=chat(), headers=once)).status_code == 200
        r = await h.client.post(CHAT, json=chat(), headers=once)
        assert r.status_code == 200 and r.headers.get("x-mesh-replayed") == "true"
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_requests_total", model="", outcome="refused",
                       code="invalid_request") == 1  # fmt: skip
        assert s.value("llm_mesh_gateway_requests_total", model="", outcome="refused",
                       code="model_not_found") == 1  # fmt: skip
        assert s.value("llm_mesh_gateway_requests_total", model=MODEL, outcome="refused",
                       code="invalid_api_key") == 1  # fmt: skip
        assert s.value("llm_mesh_gateway_requests_total", model=MODEL, outcome="replayed") == 1
        assert s.value("llm_mesh_gateway_requests_total", model=MODEL, outcome="ok") == 1
        # a model the client made up never becomes a label value
        assert "no-such-model-xyz" not in s.label_values("llm_mesh_gateway_requests_total", "model")
        # refusals have no latency histogram sample: only the one answer
        assert s.value("llm_mesh_gateway_request_duration_seconds_count") == 1


async def test_a_stream_and_its_midstream_continuation(tmp_path: Path) -> None:
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "a":
            return httpx.Response(200, headers=sse, stream=Dies(
                completion_chunks("a", model, ["Once", " upon"])[:2]))  # fmt: skip
        return httpx.Response(
            200, headers=sse, content=b"".join(completion_chunks("b", model, [" a", " time"]))
        )

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("a")
        await h.register("b")
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        r = await first_on(h, "a", "b", body)
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_stream_continuations_total") == 1
        assert s.value("llm_mesh_gateway_retries_total", outcome="server_error") == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="a", outcome="server_error") == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="b", outcome="success") == 1
        assert s.value("llm_mesh_gateway_requests_total", node="b", outcome="ok") == 1
        assert s.value("llm_mesh_gateway_tokens_total", kind="completion") == 4
        assert s.value("llm_mesh_gateway_ttft_seconds_count") == 1


async def test_nodes_by_state_are_read_from_the_table_at_scrape_time(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        for n in ("n1", "n2", "n3", "n4"):
            await h.register(n)
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_nodes", state="online") == 4
        assert s.value("llm_mesh_gateway_nodes_healthy") == 4
        r = await h.client.post("/mesh/nodes/n2/heartbeat", json={"state": "paused"})
        assert r.status_code == 200
        r = await h.client.post("/mesh/nodes/n3/heartbeat", json={"state": "draining"})
        assert r.status_code == 200
        assert (await h.client.delete("/mesh/nodes/n4")).status_code == 204
        s = await scrape(h)
        table = {st: 0 for st in ("joining", "online", "paused", "draining", "offline")}
        for entry in h.table.entries():
            table[entry.state.value] += 1
        for state, n in table.items():
            assert s.value("llm_mesh_gateway_nodes", state=state) == n
        assert (table["online"], table["paused"], table["draining"]) == (1, 1, 1)
        assert s.value("llm_mesh_gateway_nodes_healthy") == 1
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # n1's heartbeat expires
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_nodes_healthy") == 0


async def test_waiting_and_in_flight_gauges_follow_the_demand_tracker(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        demand = h.runtime.routing.demand
        demand.wait_begin(MODEL)
        demand.wait_begin(MODEL)
        demand.begin(MODEL)
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_waiting_requests", model=MODEL) == 2
        assert s.value("llm_mesh_gateway_in_flight_attempts", model=MODEL) == 1
        demand.wait_end(MODEL)
        demand.wait_end(MODEL)
        demand.end(MODEL)
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_waiting_requests") == 0


async def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
        await a.register("n1")
        await b.register("n1")
        for _ in range(2):
            assert (await a.client.post(CHAT, json=chat())).status_code == 200
        assert (await b.client.post(CHAT, json=chat())).status_code == 200
        assert (await scrape(a)).value("llm_mesh_gateway_requests_total", outcome="ok") == 2
        assert (await scrape(b)).value("llm_mesh_gateway_requests_total", outcome="ok") == 1
        assert a.runtime.metrics is not None and b.runtime.metrics is not None
        assert a.runtime.metrics.registry is not b.runtime.metrics.registry


async def test_process_metrics_are_there(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        s = await scrape(h)
        assert s.value("process_resident_memory_bytes") > 0


async def test_openmetrics_when_asked(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text", **LOCAL}
        )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.rstrip().endswith("# EOF")


async def test_metrics_off_no_route_no_counting(tmp_path: Path) -> None:
    async with running(tmp_path, metrics=False) as h:
        await h.register("n1")
        assert (await h.client.post(CHAT, json=chat())).status_code == 200
        assert h.runtime.metrics is None and h.runtime.routing.on_finish is None
        assert (await h.client.get("/metrics")).status_code == 404


async def _get(h: Harness, peer: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=h.app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
        return await c.get("/metrics", headers={**LOCAL, **(headers or {})})


async def test_access_loopback_token_or_public(tmp_path: Path) -> None:
    far = "203.0.113.7"
    async with running(tmp_path / "a", metrics_token="scrape-me") as h:
        assert (await _get(h, "127.0.0.1")).status_code == 200
        assert (await _get(h, "::1")).status_code == 200
        r = await _get(h, far)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = await _get(h, far, {"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        # the admin key is no metrics credential
        admin = {"Authorization": f"Bearer {h.settings.admin_key}"}
        assert (await _get(h, far, admin)).status_code == 401
        ok = await _get(h, far, {"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "llm_mesh_gateway_nodes" in ok.text
    async with running(tmp_path / "b", metrics_public=True) as h:
        assert (await _get(h, far)).status_code == 200


async def test_a_rebound_name_reads_no_metrics(tmp_path: Path) -> None:
    """DNS rebinding against the registry's loopback-only ``/metrics``: a page whose name
    now resolves to 127.0.0.1, from a browser sending neither ``Origin`` nor fetch
    metadata, is refused by its ``Host`` (found 2026-12-02: it read the counters); the
    metrics token, which a page cannot send, still reads them under any name."""
    rebound = {"Host": "rebind.evil.example:8800"}
    async with running(tmp_path, metrics_token="scrape-me") as h:
        for peer in ("127.0.0.1", "::1"):
            r = await _get(h, peer, rebound)
            assert r.status_code == 403 and "llm_mesh_gateway" not in r.text
            err = r.json()["error"]
            assert err["code"] == "forbidden" and "rebinding" in err["message"]
        for host in ("localhost:8800", "127.0.0.1", "[::1]:8800"):
            assert (await _get(h, "127.0.0.1", {"Host": host})).status_code == 200
        token = {**rebound, "Authorization": "Bearer scrape-me"}
        assert (await _get(h, "127.0.0.1", token)).status_code == 200
        assert (await h.client.get("/v1/models", headers=rebound)).status_code == 200


def test_code_labels_are_bounded() -> None:
    assert code_label(None) == "" and code_label("") == ""
    assert code_label("upstream_error") == "upstream_error"
    assert code_label("duplicate_request") == "duplicate_request"
    assert code_label("http_404") == "http_404"
    assert code_label("http_4044") == "other" and code_label("http_abc") == "other"
    # what a node chose to call its error never becomes a label (it could be anything)
    assert code_label("the user's prompt: tell me a secret") == "other"


def test_a_requests_end_moves_each_metric_as_its_own_child_did() -> None:
    # the children one end moves are looked up once per label values (_RequestKids): the
    # values are those of each metric's own child, and a series shows only once counted
    from unittest.mock import MagicMock

    from LLM_Mesh.registry.metrics import GatewayMetrics

    m = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
    reg = m.registry

    def value(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    m.request("m", "", "refused", "rate_limited")  # before the send stage: a count only
    assert value("llm_mesh_gateway_requests_total", model="m", node="", outcome="refused",
                 code="rate_limited") == 1.0  # fmt: skip
    assert (
        value("llm_mesh_gateway_request_duration_seconds_count", model="m", outcome="refused")
        is None
    )
    m.request("m", "n1", "error", "upstream_error", latency_s=0.2)
    m.request("m", "n1", "error", "upstream_error", latency_s=0.3, prompt_tokens=5)
    assert (
        value("llm_mesh_gateway_request_duration_seconds_count", model="m", outcome="error") == 2.0
    )
    assert value("llm_mesh_gateway_tokens_total", model="m", kind="prompt") is None
    for _ in range(2):
        m.request("m", "n1", "ok", "", latency_s=0.5, ttft_s=0.1, prompt_tokens=7,
                  completion_tokens=20)  # fmt: skip
    m.request("m", "n2", "ok", "", latency_s=0.25, completion_tokens=3)  # no ttft: no tps
    assert (
        value("llm_mesh_gateway_requests_total", model="m", node="n1", outcome="ok", code="") == 2.0
    )
    assert (
        value("llm_mesh_gateway_requests_total", model="m", node="n2", outcome="ok", code="") == 1.0
    )
    assert value("llm_mesh_gateway_request_duration_seconds_sum", model="m", outcome="ok") == 1.25
    assert value("llm_mesh_gateway_tokens_total", model="m", kind="prompt") == 14.0
    assert value("llm_mesh_gateway_tokens_total", model="m", kind="completion") == 43.0
    assert value("llm_mesh_gateway_ttft_seconds_count", model="m") == 2.0
    assert value("llm_mesh_gateway_tokens_per_second_count", model="m") == 2.0
    assert value("llm_mesh_gateway_tokens_per_second_sum", model="m") == 100.0
