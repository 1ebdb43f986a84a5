"""A node's own refusal (a 4xx) gets one second opinion (``registry/second_opinion.py``,
``core/failover.py`` ``Meaning.REJECTED``): a node refusing everything is overruled and
ejected; a request every node refuses gets the first refusal; an honest context refusal
is not blamed. Streamed or not. See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.failover import Stop
from LLM_Mesh.core.limits import GATEWAY_MARGIN_BYTES, RequestLimits
from tests.registry.helpers import FakeNodes, registration, running

CHAT = "/v1/chat/completions"

MODEL = "gemma-3-270m"


class Refusers(FakeNodes):
    """Nodes named in :attr:`replies` answer every chat request with theirs (status, JSON
    body); :attr:`order` is the order nodes were called in."""

    def __init__(self, replies: dict[str, tuple[int, dict[str, Any]]]) -> None:
        super().__init__()
        self.replies = replies
        self.order: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.url.path == CHAT:
            self.order.append(host)
        reply = self.replies.get(host)
        if reply is not None and request.url.path == CHAT:
            super().handler(request)  # counted as a call
            return httpx.Response(reply[0], json=reply[1])
        return super().handler(request)


def _ask(stream: bool) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": stream}  # fmt: skip


def _mesh(r: httpx.Response, stream: bool) -> dict[str, Any]:
    """The answer's ``mesh`` object (a stream's: in its final chunk)."""
    if not stream:
        mesh: dict[str, Any] = r.json()["mesh"]
        return mesh
    for line in r.text.splitlines():
        if line.startswith("data: {") and '"mesh"' in line:
            mesh = json.loads(line[6:])["mesh"]
            return mesh
    raise AssertionError(f"no mesh in the stream: {r.text[:300]}")


async def _nodes_view(h: Any) -> dict[str, dict[str, Any]]:
    return {v["node_id"]: v for v in (await h.client.get("/mesh/nodes")).json()["nodes"]}


EVIL = {"error": {"message": "this model moved: pay at http://evil.example/pay",
                  "type": "invalid_request_error", "code": "model_not_found"}}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_node_refusing_everything_is_overruled_and_ejected(
    tmp_path: Path, stream: bool
) -> None:
    """Attack: a node that answers every request 400 with its own URL for the client
    (before: its refusal passed on, its attempt neutral, never ejected, kept its traffic).
    Now another node gives a second opinion: every client gets an answer, never the
    node's words, and the refusal counts as the node's failure: it is ejected."""
    nodes = Refusers({"bad": (400, EVIL)})
    async with running(tmp_path, nodes=nodes) as h:
        bad = await h.register("bad")
        await h.register("good")
        routing = h.runtime.routing
        busy = routing.begin("good", MODEL)  # "bad" looks best for the first request
        answers = [await h.client.post(CHAT, json=_ask(stream))]
        routing.finish(busy, Outcome.CANCELLED)
        for _ in range(9):
            answers.append(await h.client.post(CHAT, json=_ask(stream)))
        view = await _nodes_view(h)
        await h.runtime.writer.flush()
        rows = h.store.requests
    for r in answers:
        assert r.status_code == 200, r.text  # before: the node's 400
        assert "evil.example" not in r.text
        assert r.headers["x-mesh-node"] == "good"
    assert nodes.order[:2] == ["bad", "good"]
    assert _mesh(answers[0], stream)["attempts"] == 2  # the refusal is one of them
    assert len(bad.calls) == 1  # ejected at its first overruled refusal: no more traffic
    assert view["bad"]["ejected"] is True and view["bad"]["health_score"] < 1.0
    assert view["good"]["ejected"] is False
    assert [row.node_id for row in rows] == ["good"] * 10  # answered (and charged) by good
    assert all(row.error_code is None for row in rows)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_request_both_nodes_refuse_gets_the_first_refusal(
    tmp_path: Path, stream: bool
) -> None:
    """A request that really is bad: the second node refuses it too. The client gets the
    first node's refusal (as without a second opinion); neither node is blamed."""

    def says_no(node: str) -> tuple[int, dict[str, Any]]:
        return 400, {"error": {"message": f"{node} says no", "type": "invalid_request_error",
                               "code": "invalid_request", "param": "messages"}}  # fmt: skip

    nodes = Refusers({"a": says_no("a"), "b": says_no("b")})
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        await h.register("b")
        stops: list[tuple[int, Stop | None]] = []
        h.runtime.observer = lambda job, fo: stops.append((fo.attempts, fo.stopped))
        r = await h.client.post(CHAT, json=_ask(stream))
        view = await _nodes_view(h)
    first = nodes.order[0]
    assert sorted(nodes.order) == ["a", "b"]  # before: only the first was asked
    assert r.status_code == 400
    assert r.headers["x-mesh-node"] == first
    assert r.json()["error"]["message"] == f"{first} says no"
    assert stops == [(2, Stop.REJECTED)]
    assert not view["a"]["ejected"] and not view["b"]["ejected"]
    assert view["a"]["health_score"] == view["b"]["health_score"] == 1.0


async def test_a_refusal_with_no_other_node_is_passed_on_at_once(tmp_path: Path) -> None:
    nodes = Refusers({"bad": (400, EVIL)})
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("bad")
        stops: list[tuple[int, Stop | None]] = []
        h.runtime.observer = lambda job, fo: stops.append((fo.attempts, fo.stopped))
        r = await h.client.post(CHAT, json=_ask(False))
        view = await _nodes_view(h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
    assert stops == [(1, Stop.NO_NODE)] and nodes.order == ["bad"]
    assert view["bad"]["ejected"] is False


@pytest.mark.parametrize(("small_ctx", "blamed"), [(2048, False), (8192, True)])
async def test_a_context_refusal_of_a_smaller_node_is_not_blamed(
    tmp_path: Path, small_ctx: int, blamed: bool
) -> None:
    """An honest node declaring a smaller context than the node that answered refuses a
    long prompt by its exact count: not its failure. A node declaring as much as the
    answering node has no such excuse."""
    async with running(tmp_path) as h:
        for node_id, ctx, behavior in (("small", small_ctx, "400"), ("big", 8192, "ok")):
            h.nodes.add(node_id, behavior)
            reg = registration(node_id)
            reg["models"][0]["context_length"] = ctx
            assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        routing = h.runtime.routing
        busy = routing.begin("big", MODEL)  # "small" looks best
        r = await h.client.post(CHAT, json=_ask(False))
        routing.finish(busy, Outcome.CANCELLED)
        view = await _nodes_view(h)
    assert r.status_code == 200 and r.headers["x-mesh-node"] == "big"
    assert len(h.nodes.nodes["small:8801"].calls) == 1
    assert view["small"]["ejected"] is blamed


TOO_LARGE = {"error": {"message": "the request body is larger than max_body_bytes (8192 bytes)",
                       "type": "invalid_request_error", "code": "request_too_large"}}  # fmt: skip


@pytest.mark.parametrize(("size", "blamed"), [(8192, False), (8192 - GATEWAY_MARGIN_BYTES, True)],
                         ids=["within_the_margin_of_the_limit", "further_below"])  # fmt: skip
async def test_a_413_for_the_gateways_own_additions_is_not_blamed(
    tmp_path: Path, size: int, blamed: bool
) -> None:
    """An older node whose body limit equals the gateway's (8192 bytes here) refuses a
    client body the gateway accepted once the gateway's own members are added (found
    2026-12-05: it was blamed, ejected, when a node with a larger limit took the request).
    A body further below the limit than the gateway adds is no such case."""
    limits = RequestLimits(max_body_bytes=8192)
    nodes = Refusers({"old": (413, TOO_LARGE)})
    async with running(tmp_path, nodes=nodes, limits=limits) as h:
        await h.register("old")
        await h.register("big")
        routing = h.runtime.routing
        busy = routing.begin("big", MODEL)  # "old" looks best
        body = _ask(False)
        pad = size - len(json.dumps(body, separators=(",", ":")).encode())
        body["messages"][0]["content"] = "hi" + "x" * pad
        raw = json.dumps(body, separators=(",", ":")).encode()
        assert len(raw) == size
        r = await h.client.post(CHAT, content=raw, headers={"content-type": "application/json"})
        routing.finish(busy, Outcome.CANCELLED)
        view = await _nodes_view(h)
    assert r.status_code == 200 and r.headers["x-mesh-node"] == "big"
    assert nodes.order[:2] == ["old", "big"]
    assert view["old"]["ejected"] is blamed
