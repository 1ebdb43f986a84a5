"""The /v1 gateway: input checks before any node is called, forwarding, errors, retries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.catalog import CUSTOM_COMPLETION_PRICE_PER_1K, CUSTOM_PROMPT_PRICE_PER_1K
from LLM_Mesh.core.pricing import Price, request_cost
from LLM_Mesh.core.receipt import client_ledger_id
from tests.registry.helpers import Harness, funded_key, running

GEMMA_PRICE = Price(500, 1_000)

CHAT = "/v1/chat/completions"


def chat(model: str = "gemma-3-270m", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


@pytest.fixture
async def mesh(tmp_path: Path) -> Any:
    async with running(tmp_path) as h:
        await h.register("node-a")
        yield h


# --- bad input: 400, never 500, no node called ---------------------------------


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
        (json.dumps({"model": "gemma-3-270m"}).encode(), "messages"),
        (json.dumps(chat(messages=[])).encode(), "messages"),
        (
            json.dumps(chat(messages=[{"role": "wizard", "content": "x"}])).encode(),
            "messages.0.role",
        ),
        (json.dumps(chat(temperature=5)).encode(), "temperature"),
        (json.dumps(chat(max_tokens=0)).encode(), "max_tokens"),
        (json.dumps(chat(n=3)).encode(), "n"),
    ],
)
async def test_bad_chat_bodies_are_400_and_call_no_node(
    mesh: Harness, content: bytes, param: str | None
) -> None:
    r = await mesh.client.post(CHAT, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    if param:
        assert param in err["message"]
    assert mesh.nodes.calls() == 0


async def test_bad_completion_prompt_list(mesh: Harness) -> None:
    r = await mesh.client.post(
        "/v1/completions", json={"model": "gemma-3-270m", "prompt": ["a", "b"]}
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt"
    assert mesh.nodes.calls() == 0


async def test_unknown_model_is_404_listing_models(mesh: Harness) -> None:
    r = await mesh.client.post(CHAT, json=chat("gpt-17"))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found"
    assert err["param"] == "model"
    assert "gemma-3-270m" in err["models"] and "mistral-7b" in err["models"]
    assert "mistral-7b" in err["message"]
    assert mesh.nodes.calls() == 0


async def test_context_too_long_is_400_before_any_node(mesh: Harness) -> None:
    r = await mesh.client.post(
        CHAT, json=chat(max_tokens=32_768, messages=[{"role": "user", "content": "x" * 600}])
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert mesh.nodes.calls() == 0


async def test_node_reported_context_length_wins(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        h.nodes.add("small")
        reg = {
            "node_id": "small",
            "url": "http://small:8801",
            "models": [{"id": "gemma-3-270m", "context_length": 100}],
        }
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        r = await h.client.post(CHAT, json=chat(max_tokens=200))
        assert r.status_code == 400
        assert "100 tokens" in r.json()["error"]["message"]
        assert h.nodes.calls() == 0


async def test_no_healthy_node_is_503_with_retry_after(mesh: Harness) -> None:
    r = await mesh.client.post(CHAT, json=chat("mistral-7b"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "10"
    err = r.json()["error"]
    assert err["code"] == "model_unavailable"
    assert err["available"] == ["gemma-3-270m"]
    assert "mistral-7b" in err["message"]
    assert mesh.nodes.calls() == 0


async def test_unknown_route_is_openai_shaped_404(mesh: Harness) -> None:
    r = await mesh.client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"


# --- forwarding ------------------------------------------------------------------


async def test_non_stream_chat_forwards_and_completes_mesh(mesh: Harness) -> None:
    mesh.nodes.on_call = lambda _node: mesh.clock.advance(0.05)  # the node takes 50 ms
    body = chat(max_tokens=16)
    r = await mesh.client.post(CHAT, json=body, headers={"X-Request-Id": "abc-1"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["choices"][0]["message"]["content"] == "Hello!"
    m = data["mesh"]
    assert m["node_id"] == "node-a"
    assert m["request_id"] == "abc-1"
    assert m["attempts"] == 1
    assert m["simulated"] is True and m["engine"] == "sim"
    assert m["cost"] == request_cost(GEMMA_PRICE, 10, 5) == 10  # (10 x 500 + 5 x 1000) / 1000
    assert m["latency_ms"] == 50.0  # end to end, on the gateway's clock
    assert m["ttft_ms"] == 46.0  # the node's 3 ms + the 43 ms its own 7 ms do not explain
    assert r.headers["x-mesh-node"] == "node-a"
    assert r.headers["x-mesh-request-id"] == "abc-1"
    call = mesh.nodes.nodes["node-a:8801"].calls[0]
    assert call["path"] == CHAT
    assert call["body"] == body  # forwarded unchanged
    sent = call["headers"]["x-request-id"]  # a gateway-made id, never the client's
    assert sent != "abc-1" and re.fullmatch(r"req-[0-9a-f]{32}", sent)
    assert m["receipt_request_id"] == sent
    entry = mesh.table.get("node-a")
    assert entry is not None and mesh.in_flight("node-a") == 0 and entry.requests == 1
    await mesh.runtime.writer.flush()
    (rec,) = mesh.store.requests
    assert rec.outcome == "ok" and rec.node_id == "node-a" and rec.completion_tokens == 5
    assert rec.request_id == client_ledger_id("abc-1")  # the client's id hashed
    assert not hasattr(rec, "prompt")


async def test_completions_endpoint(mesh: Harness) -> None:
    r = await mesh.client.post("/v1/completions", json={"model": "gemma-3-270m", "prompt": "def"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["text"] == "def f(): pass"
    assert mesh.nodes.nodes["node-a:8801"].calls[0]["path"] == "/v1/completions"


async def test_request_id_is_generated(mesh: Harness) -> None:
    r = await mesh.client.post(CHAT, json=chat())
    assert r.json()["mesh"]["request_id"].startswith("req-")


async def test_stream_passes_chunks_and_replaces_final_mesh(mesh: Harness) -> None:
    r = await mesh.client.post(CHAT, json=chat(stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-mesh-node"] == "node-a"
    assert r.headers["x-mesh-model"] == "gemma-3-270m"
    assert r.headers["x-mesh-request-id"].startswith("req-")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello!"
    final = chunks[-1]
    # no include_usage asked: usage and mesh on the finish chunk (OpenAI's shape: no "choices": [])
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"]["completion_tokens"] == 3
    assert final["mesh"]["request_id"] == r.headers["x-mesh-request-id"]
    assert final["mesh"]["cost"] == request_cost(GEMMA_PRICE, 4, 3) == 5
    assert final["mesh"]["ttft_ms"] is not None and final["mesh"]["latency_ms"] is not None
    sent = mesh.nodes.nodes["node-a:8801"].calls[0]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    await mesh.runtime.writer.flush()
    (rec,) = mesh.store.requests
    assert rec.stream and rec.outcome == "ok" and rec.completion_tokens == 3


async def test_node_4xx_passes_through(mesh: Harness) -> None:
    mesh.nodes.nodes["node-a:8801"].behavior = "400"
    r = await mesh.client.post(CHAT, json=chat())
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    entry = mesh.table.get("node-a")
    assert entry is not None and entry.failures == 0 and mesh.in_flight("node-a") == 0


# --- node failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "status", "code"),
    [
        ("500", 502, "upstream_error"),
        ("connect_error", 502, "upstream_error"),
        ("timeout", 504, "upstream_timeout"),
    ],
)
async def test_node_failure_is_clear_error_and_marks_node(
    mesh: Harness, behavior: str, status: int, code: str
) -> None:
    mesh.nodes.nodes["node-a:8801"].behavior = behavior
    r = await mesh.client.post(CHAT, json=chat())
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code
    assert err["node_id"] == "node-a"
    assert "node-a" in err["message"]
    entry = mesh.table.get("node-a")
    assert entry is not None and entry.failures == 1 and mesh.in_flight("node-a") == 0
    await mesh.runtime.writer.flush()
    assert mesh.store.requests[0].outcome == "error"
    assert mesh.store.requests[0].error_code == code


async def test_stream_node_failure_before_bytes_is_json_error(mesh: Harness) -> None:
    mesh.nodes.nodes["node-a:8801"].behavior = "500"
    r = await mesh.client.post(CHAT, json=chat(stream=True))
    assert r.status_code == 502
    assert r.json()["error"]["node_id"] == "node-a"


@pytest.mark.parametrize("behavior", ["500", "connect_error", "429"])
async def test_retries_a_different_node(mesh: Harness, behavior: str) -> None:
    mesh.nodes.nodes["node-a:8801"].behavior = behavior
    await mesh.register("node-b")
    busy = mesh.runtime.routing.begin("node-b", "gemma-3-270m")  # so node-a is tried first
    r = await mesh.client.post(CHAT, json=chat())
    mesh.runtime.routing.finish(busy, Outcome.CANCELLED)
    assert r.status_code == 200, r.text
    assert r.json()["mesh"]["node_id"] == "node-b"
    assert r.json()["mesh"]["attempts"] == 2
    assert len(mesh.nodes.nodes["node-a:8801"].calls) == 1


async def test_429_with_no_other_node_is_429_with_retry_after(mesh: Harness) -> None:
    mesh.nodes.nodes["node-a:8801"].behavior = "429"
    r = await mesh.client.post(CHAT, json=chat())
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["error"]["code"] == "overloaded"
    entry = mesh.table.get("node-a")
    assert entry is not None and entry.failures == 0


async def test_max_attempts_bounds_retries(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=2) as h:
        for n in ("n1", "n2", "n3"):
            await h.register(n, behavior="500")
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 502
        assert r.json()["error"]["attempts"] == 2
        assert h.nodes.calls() == 2


# --- routing follows health ------------------------------------------------------------


async def test_heartbeat_expiry_removes_node_from_routing(mesh: Harness) -> None:
    assert (await mesh.client.post(CHAT, json=chat())).status_code == 200
    mesh.clock.advance(29.0)
    assert (await mesh.client.post(CHAT, json=chat())).status_code == 200
    mesh.clock.advance(2.0)  # 31 s since the registration: past 10 s x 3
    r = await mesh.client.post(CHAT, json=chat())
    assert r.status_code == 503
    assert r.json()["error"]["available"] == []
    hb = await mesh.client.post("/mesh/nodes/node-a/heartbeat", json={})
    assert hb.status_code == 200
    assert (await mesh.client.post(CHAT, json=chat())).status_code == 200


async def test_least_loaded_node_is_picked(mesh: Harness) -> None:
    await mesh.register("node-b")
    mesh.runtime.routing.begin("node-a", "gemma-3-270m")  # node-a is busy with one request
    r = await mesh.client.post(CHAT, json=chat())
    assert r.json()["mesh"]["node_id"] == "node-b"


# --- models --------------------------------------------------------------------------


async def test_v1_models_lists_served_and_custom(mesh: Harness) -> None:
    await mesh.register("node-c", models=["my-finetune"])
    r = await mesh.client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["gemma-3-270m"]["available"] is True and by_id["gemma-3-270m"]["nodes"] == 1
    assert (
        "mistral-7b" not in by_id
    )  # in the catalog, served by nobody (tests/registry/test_listing.py)
    assert by_id["my-finetune"]["custom"] is True and by_id["my-finetune"]["available"] is True


async def test_custom_model_routes_and_costs_custom_price(mesh: Harness) -> None:
    await mesh.register("node-c", models=["my-finetune"])
    # with an API key: the community pool pays for catalog models only (test_charge_pool.py)
    auth = await funded_key(mesh)
    r = await mesh.client.post(CHAT, json=chat("my-finetune"), headers=auth)
    assert r.status_code == 200
    assert r.json()["mesh"]["node_id"] == "node-c"
    custom = Price(CUSTOM_PROMPT_PRICE_PER_1K, CUSTOM_COMPLETION_PRICE_PER_1K)
    assert r.json()["mesh"]["cost"] == request_cost(custom, 10, 5) == 15
