"""A node's body limit leaves room for what the gateway adds to a client's body
(``core/limits.py`` :data:`~LLM_Mesh.core.limits.GATEWAY_MARGIN_BYTES`; found 2026-12-05:
a node whose ``max_body_bytes`` equalled the gateway's refused with 413 a keyed client body
the gateway had accepted, 24 bytes under its limit, for the ``"mesh_priority":"keyed"``
member the gateway itself spliced in, and was blamed when a node with a larger limit took
it). Tested at the exact boundary, through the real node app as the gateway calls it."""

from __future__ import annotations

import json
from typing import Any

from LLM_Mesh.core.limits import GATEWAY_MARGIN_BYTES, MIB
from LLM_Mesh.core.priority import keyed_raw
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.registry.send_stream import stream_payload
from tests.node import test_gateway_guard as tg
from tests.node import test_gateway_guard_unread as tu

registry = tg.registry
registered = tg.registered
Registry = tg.Registry


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _client_body(size: int, **extra: Any) -> tuple[bytes, dict[str, Any]]:
    """A chat body of exactly ``size`` bytes (compact JSON, as a client may send it), padded
    in ``user`` (OpenAI's end-user id: no prompt, no count limit)."""
    body: dict[str, Any] = {**tg.CHAT, **extra, "user": ""}
    body["user"] = "x" * (size - len(_compact(body)))
    raw = _compact(body)
    assert len(raw) == size
    return raw, body


async def _send(svc: NodeService, registry: Registry, payload: bytes) -> tuple[int, Any]:
    headers = registry.headers(svc.node_id, payload)
    body = tu.CountedBody(payload)
    sent = await tu._exchange(svc, headers, body, declared=len(payload))
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), data


async def test_a_keyed_body_at_the_gateways_limit_is_served_by_a_node_with_the_same_limit(
    registered: NodeService, registry: Registry
) -> None:
    registered.config.max_body_bytes = MIB  # the operator set it equal to the gateway's 1 MiB
    raw, body = _client_body(MIB)  # the largest body the gateway accepts
    payload = keyed_raw(raw, body)
    assert len(payload) > MIB  # the gateway's own member: over the node's limit
    status, data = await _send(registered, registry, payload)
    assert status == 200, data[:300]  # before: 413 request_too_large
    raw, body = _client_body(MIB, stream=True)
    payload = stream_payload(body, keyed=True)
    status, data = await _send(registered, registry, payload)
    assert status == 200, data[:300]
    assert registered.requests_served == 2


async def test_a_body_past_the_limit_and_the_margin_is_still_413(
    registered: NodeService, registry: Registry
) -> None:
    registered.config.max_body_bytes = MIB
    raw, _ = _client_body(MIB + GATEWAY_MARGIN_BYTES)
    status, data = await _send(registered, registry, raw)
    assert status == 200, data[:300]  # exactly at the limit and the margin
    raw, _ = _client_body(MIB + GATEWAY_MARGIN_BYTES + 1)
    status, data = await _send(registered, registry, raw)
    assert status == 413
    assert json.loads(data)["error"]["code"] == "request_too_large"
