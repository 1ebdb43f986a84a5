"""A mesh for the node-authentication tests (``test_node_auth*.py`` and others): a wall clock,
signing nodes, their registration, heartbeat and errors, and an operator's token."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import (
    HDR_OPERATOR_TOKEN,
    MessageKind,
    NodeSigner,
)
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness, registration, running

NOW = 1_800_000_000.0


class Wall:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    signer: NodeSigner
    token: str | None

    @property
    def node_id(self) -> str:
        return self.signer.node_id

    def body(self, **extra: Any) -> bytes:
        reg = registration(self.node_id, **extra)
        return json.dumps(reg).encode()

    def reg_headers(self, body: bytes) -> dict[str, str]:
        h = self.signer.headers(MessageKind.REGISTER, body)
        if self.token:
            h[HDR_OPERATOR_TOKEN] = self.token
        h["content-type"] = "application/json"
        return h

    def headers(self, kind: MessageKind, body: bytes, target: str | None = None) -> dict[str, str]:
        h = self.signer.headers(kind, body, target=target or self.node_id)
        h["content-type"] = "application/json"
        return h


class RevokedMeanwhile(MemoryStore):
    """A store whose node's key is revoked as the registration writes the node's row."""

    async def upsert_node(self, rec: Any, **kw: Any) -> bool:
        await self.revoke_node(rec.node_id, datetime.now(timezone.utc))
        return await super().upsert_node(rec, **kw)


def make_node(wall: Callable[[], float], token: str | None) -> Node:
    return Node(NodeSigner(Ed25519PrivateKey.generate(), wall), token)


async def register(h: Harness, node: Node, **extra: Any) -> httpx.Response:
    body = node.body(**extra)
    return await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))


async def beat(h: Harness, node: Node, hb: dict[str, Any] | None = None) -> httpx.Response:
    body = json.dumps(hb or {"in_flight": 1}).encode()
    return await h.client.post(
        f"/mesh/nodes/{node.node_id}/heartbeat",
        content=body,
        headers=node.headers(MessageKind.HEARTBEAT, body),
    )


def error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["type"] == ("authentication_error" if status == 401 else "permission_error")


async def mesh(tmp_path: Path, store: MemoryStore, wall: Wall) -> Any:
    return running(tmp_path, store=store, signed=True, wall_clock=wall)


async def operator(store: MemoryStore, name: str = "alice") -> str:
    token = await add_operator(store, name)
    assert token is not None
    return token


def snapshot(h: Harness) -> Any:
    """Everything a refused message must leave as it was."""
    entries = {
        e.node_id: (e.state, e.url, e.reported_in_flight, e.reported_queued)
        for e in h.table.entries()
    }
    keys = {k: (v.last_seq, v.revoked_at, v.operator) for k, v in h.store.node_keys.items()}
    nodes = {k: (v.state, v.url, v.last_heartbeat_at) for k, v in h.store.nodes.items()}
    return entries, keys, nodes


async def paid_to(h: Harness, request_id: str) -> tuple[str, str]:
    """The first ledger entry of ``request_id``: (kind, to account)."""
    rt = h.runtime
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    found = [(e.kind, e.to_account) for e in entries if e.request_id == request_id]
    assert found, request_id
    return found[0]
