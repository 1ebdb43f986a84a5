"""A stand-in registry for the node agent's tests (``test_agent*.py``): it records what the
agent sends and answers as told; an agent over it, and several replicas of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx

from LLM_Mesh.core.schemas import Heartbeat, HostedModel, NodeRegistration, NodeState
from LLM_Mesh.node.agent import NodeAgent

REG = "http://registry.test"


class FakeRegistry:
    """Records calls; ``down`` makes it unreachable; ``forget()`` drops the node."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, object] | None]] = []
        self.known: set[str] = set()
        self.down = False
        self.health: object = None  # the heartbeat answer's "health" (None: not said)

    def forget(self) -> None:
        self.known.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if request.method == "POST" and path == "/mesh/nodes":
            reg = NodeRegistration.model_validate(body)
            self.known.add(reg.node_id)
            return httpx.Response(200, json={"node_id": reg.node_id, "heartbeat_interval_s": 7.0})
        if request.method == "POST" and path.endswith("/heartbeat"):
            node_id = path.split("/")[3]
            Heartbeat.model_validate(body)
            if node_id not in self.known:
                err = {
                    "message": "unknown",
                    "type": "invalid_request_error",
                    "code": "unknown_node",
                }
                return httpx.Response(404, json={"error": err})
            said = {} if self.health is None else {"health": self.health}
            return httpx.Response(200, json={"ok": True, **said})
        if request.method == "DELETE":
            self.known.discard(path.split("/")[3])
            return httpx.Response(204)
        return httpx.Response(500)

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _ in self.calls]


def make_agent(
    registry: FakeRegistry, sleep: Callable[[float], object] | None = None, **kw: object
) -> NodeAgent:
    client = httpx.AsyncClient(transport=httpx.MockTransport(registry))

    def registration() -> NodeRegistration:
        return NodeRegistration(
            node_id="node-a", url="http://127.0.0.1:8801", models=[HostedModel(id="m")]
        )

    async def default_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    kw.setdefault("registry_url", REG)
    return NodeAgent(
        client=client,
        node_id="node-a",
        registration=registration,
        heartbeat=lambda: Heartbeat(in_flight=1, queued=2, state=NodeState.ONLINE),
        interval_s=10.0,
        sleep=sleep or default_sleep,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


class Replicas:
    """Registry replicas by host, sharing what they know (one store); each can be down,
    answer 5xx (``broken``), refuse (``refuse``: a 401 the whole network would give) or say
    the node is revoked (``revoke``: a 403 ``revoked``, that registry's decision)."""

    def __init__(self, *hosts: str) -> None:
        self.regs = {h: FakeRegistry() for h in hosts}
        shared: set[str] = set()
        for r in self.regs.values():
            r.known = shared
        self.broken: set[str] = set()
        self.refuse: set[str] = set()
        self.revoke: set[str] = set()
        self.seqs: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seqs.append((host, request.headers.get("X-Mesh-Seq", "")))
        if host in self.broken:
            return httpx.Response(502, text="bad gateway")
        if host in self.refuse:
            err = {"message": "bad signature", "type": "authentication_error",
                   "code": "invalid_signature"}  # fmt: skip
            return httpx.Response(401, json={"error": err})
        if host in self.revoke:
            err = {"message": "node node-a is revoked", "type": "permission_error",
                   "code": "revoked"}  # fmt: skip
            return httpx.Response(403, json={"error": err})
        return self.regs[host](request)

    def hits(self, host: str) -> list[str]:
        return self.regs[host].paths()


def replica_agent(replicas: Replicas, **kw: object) -> NodeAgent:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import NodeSigner

    clock = iter(range(1000, 10**6))
    agent = make_agent(
        FakeRegistry(), signer=NodeSigner(Ed25519PrivateKey.generate(), lambda: next(clock)), **kw
    )
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(replicas))
    return agent
