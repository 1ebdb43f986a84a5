"""Heartbeats served ahead of FastAPI (``registry/hot_heartbeat.py``): the hot way is
taken, answers exactly as the FastAPI route does (success, every refusal of issue 8's
table, 404, 413), changes nothing on a refusal, and steps aside when it must."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import ASGIApp, Receive, Scope, Send

from LLM_Mesh.core.beat_mac import TOKEN_CHARS
from LLM_Mesh.core.identity import HDR_NODE, MessageKind, NodeSigner
from LLM_Mesh.hot_routes import HotRoutesApp
from LLM_Mesh.registry.hot_heartbeat import AsgiHeaders, RegistryApp, heartbeat_node_id
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness, running
from tests.registry.node_auth_mesh import (
    NOW,
    Node,
    Wall,
    beat,
    make_node,
    mesh,
    operator,
    register,
    snapshot,
)


class _Counting:
    """Counts the requests that reach ``HotRoutesApp.__call__`` (FastAPI's way)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        original = HotRoutesApp.__call__

        async def counted(app: HotRoutesApp, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.calls.append(scope["path"])
            await original(app, scope, receive, send)

        monkeypatch.setattr(HotRoutesApp, "__call__", counted)


def _hot(h: Harness, on: bool) -> None:
    assert isinstance(h.app, RegistryApp)
    h.app.hot_heartbeat = on


def test_heartbeat_node_id_matches_the_route_s_one_segment() -> None:
    assert heartbeat_node_id("/mesh/nodes/node-a/heartbeat") == "node-a"
    for path in (
        "/mesh/nodes//heartbeat",
        "/mesh/nodes/a/b/heartbeat",
        "/mesh/nodes/a/heartbeats",
        "/mesh/nodes/heartbeat",
        "/mesh/node/a/heartbeat",
        "/v1/mesh/nodes/a/heartbeat",
    ):
        assert heartbeat_node_id(path) is None, path


def test_asgi_headers_are_case_insensitive_and_the_first_wins() -> None:
    h = AsgiHeaders([(b"x-mesh-seq", b"1"), (b"x-mesh-seq", b"2"), (b"content-type", b"a/b")])
    assert h["X-MESH-SEQ"] == "1" and h.get("x-mesh-seq") == "1"
    assert h.get("Content-Type") == "a/b" and h.get("missing") is None
    assert len(h) == 2 and set(h) == {"x-mesh-seq", "content-type"}
    with pytest.raises(KeyError):
        h["missing"]


async def test_a_signed_heartbeat_takes_the_hot_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await register(h, node)
        counting = _Counting(monkeypatch)
        r = await beat(h, node, {"in_flight": 3, "queued": 1})
        assert r.status_code == 200, r.text
        answer = r.json()
        # the node's id, an expiry and their HMAC under registry.key (beatkey39)
        assert len(answer.pop("beat_token")) == TOKEN_CHARS
        assert answer == {
            "ok": True,
            "heartbeat_interval_s": h.settings.heartbeat_interval_s,
            "registry_id": h.runtime.signer.registry_id,
            "gateway_body_sha256": True,
        }
        assert r.headers["content-type"] == "application/json"
        assert counting.calls == []  # FastAPI never saw it
        entry = h.table.get(node.node_id)
        assert entry is not None and entry.reported_in_flight == 3
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        assert h.store.nodes[node.node_id].last_heartbeat_at is not None
        # other routes still go FastAPI's way
        await h.client.get("/mesh/nodes")
        assert counting.calls == ["/mesh/nodes"]
        _hot(h, False)
        assert (await beat(h, node)).status_code == 200
        assert counting.calls[-1] == f"/mesh/nodes/{node.node_id}/heartbeat"


def _attacks(wall: Wall) -> list[tuple[str, Any]]:
    """Each of issue 8's refusals as (name, coroutine factory taking (h, node, other))."""

    async def replay(h: Harness, node: Node, other: Node) -> httpx.Response:
        body = b'{"in_flight":1}'
        headers = node.headers(MessageKind.HEARTBEAT, body)
        url = f"/mesh/nodes/{node.node_id}/heartbeat"
        assert (await h.client.post(url, content=body, headers=headers)).status_code == 200
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        h.before = snapshot(h)  # type: ignore[attr-defined]
        return await h.client.post(url, content=body, headers=headers)

    async def old_seq(h: Harness, node: Node, other: Node) -> httpx.Response:
        assert (await beat(h, node)).status_code == 200
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        h.before = snapshot(h)  # type: ignore[attr-defined]
        node.signer.last_seq -= 10
        node.signer.wall_clock = lambda: NOW - 60
        try:
            return await beat(h, node)
        finally:
            node.signer.wall_clock = wall

    async def stale(h: Harness, node: Node, other: Node) -> httpx.Response:
        node.signer.wall_clock = lambda: NOW + 121
        try:
            return await beat(h, node)
        finally:
            node.signer.wall_clock = wall

    async def wrong_key(h: Harness, node: Node, other: Node) -> httpx.Response:
        body = b'{"in_flight":5}'
        headers = other.headers(MessageKind.HEARTBEAT, body, target=node.node_id)
        headers[HDR_NODE] = node.node_id
        return await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers
        )

    async def altered(h: Harness, node: Node, other: Node) -> httpx.Response:
        headers = node.headers(MessageKind.HEARTBEAT, b'{"state":"online"}')
        return await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat",
            content=b'{"state":"draining"}',
            headers=headers,
        )

    async def other_id(h: Harness, node: Node, other: Node) -> httpx.Response:
        body = b'{"state":"draining"}'
        return await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat",
            content=body,
            headers=other.headers(MessageKind.HEARTBEAT, body, target=node.node_id),
        )

    async def unsigned(h: Harness, node: Node, other: Node) -> httpx.Response:
        return await h.client.post(f"/mesh/nodes/{node.node_id}/heartbeat", json={})

    async def signed_as_deregister(h: Harness, node: Node, other: Node) -> httpx.Response:
        body = b"{}"
        headers = node.headers(MessageKind.DEREGISTER, body)
        return await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers
        )

    async def bad_body(h: Harness, node: Node, other: Node) -> httpx.Response:
        return await beat(h, node, {"in_flight": "many"})

    return [
        ("replay", (replay, 401, "replayed_message")),
        ("old_seq", (old_seq, 401, "replayed_message")),
        ("stale", (stale, 401, "stale_message")),
        ("wrong_key", (wrong_key, 401, "invalid_signature")),
        ("altered", (altered, 401, "invalid_signature")),
        ("other_id", (other_id, 403, "node_id_mismatch")),
        ("unsigned", (unsigned, 401, "invalid_signature")),
        ("signed_as_deregister", (signed_as_deregister, 401, "invalid_signature")),
        ("bad_body", (bad_body, 400, None)),
    ]


@pytest.mark.parametrize("name", [name for name, _ in _attacks(Wall())])
async def test_each_refusal_is_the_fastapi_route_s_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    answers: dict[bool, tuple[int, Any]] = {}
    keys = (Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())  # the same ids twice
    for hot in (False, True):
        store, wall = MemoryStore(), Wall()
        token = await operator(store)
        node, other = (Node(NodeSigner(key, wall), token) for key in keys)
        attack, status, code = dict(_attacks(wall))[name]
        async with await mesh(tmp_path / str(hot), store, wall) as h:
            _hot(h, hot)
            await register(h, node)
            await register(h, other)
            h.before = snapshot(h)  # type: ignore[attr-defined]
            counting = _Counting(monkeypatch)
            r = await attack(h, node, other)
            monkeypatch.undo()
            assert r.status_code == status, r.text
            err = r.json()["error"]
            if code is not None:
                assert err["code"] == code, err
            after, before = snapshot(h), h.before  # type: ignore[attr-defined]
            if name == "bad_body":  # signed by the node itself: its number is taken
                after, before = (after[0], after[2]), (before[0], before[2])
            assert after == before
            hb_path = f"/mesh/nodes/{node.node_id}/heartbeat"
            assert (hb_path in counting.calls) is not hot
            answers[hot] = (r.status_code, r.json())
    assert answers[True] == answers[False]


async def test_unknown_node_is_404_on_both_ways(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        answers = []
        for hot in (True, False):
            _hot(h, hot)
            r = await beat(h, node)
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1]
        assert answers[0][0] == 404 and answers[0][1]["error"]["code"] == "unknown_node"


async def test_an_oversized_body_is_413_declared_or_streamed(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    limited = running(tmp_path, store=store, signed=True, wall_clock=wall, max_mesh_body_bytes=4096)
    async with limited as h:
        await register(h, node)
        before = snapshot(h)
        big = json.dumps({"in_flight": 1, "pad": "x" * 5000}).encode()
        headers = node.headers(MessageKind.HEARTBEAT, big)
        url = f"/mesh/nodes/{node.node_id}/heartbeat"
        r = await h.client.post(url, content=big, headers=headers)
        assert r.status_code == 413, r.text

        async def chunks() -> Any:
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        r = await h.client.post(
            url, content=chunks(), headers=node.headers(MessageKind.HEARTBEAT, big)
        )
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] is not None
        assert snapshot(h) == before


async def test_other_middleware_sends_heartbeats_the_normal_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    class Watch:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.app(scope, receive, send)

    from LLM_Mesh.registry import app as app_module

    made = app_module.create_registry_app

    def with_watch(*args: Any, **kw: Any) -> Any:
        app = made(*args, **kw)
        app.add_middleware(Watch)
        return app

    monkeypatch.setattr("tests.registry.helpers.create_registry_app", with_watch)
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await register(h, node)
        assert (await beat(h, node)).status_code == 200
        assert f"/mesh/nodes/{node.node_id}/heartbeat" in seen  # the middleware saw it


def test_the_registry_app_serves_heartbeats_hot_with_its_own_middleware(tmp_path: Path) -> None:
    """The registry's own stack (body limits; metrics on or off) keeps the hot way."""
    from LLM_Mesh.registry.app import create_registry_app
    from tests.registry.helpers import make_settings

    for metrics in (True, False):
        app = create_registry_app(make_settings(tmp_path / str(metrics), metrics=metrics))
        assert isinstance(app, RegistryApp)
        assert app._heartbeat_hot()
