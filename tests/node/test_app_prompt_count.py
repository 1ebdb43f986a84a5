"""A node says a stream's prompt count as its answer opens (``X-Mesh-Prompt-Tokens``):
the count its final ``usage`` states, before its first token, so a gateway can charge a
stream the client cuts at the node's count (``core/prompt_count.py``; found 2026-12-06,
``money34``: the gateway's usual count, a third of a prompt of digits)."""

from __future__ import annotations

import httpx

from LLM_Mesh.core.prompt_count import (
    HDR_PROMPT_SIGNATURE,
    HDR_PROMPT_TOKENS,
    checked_claim,
    said_prompt_tokens,
)
from LLM_Mesh.core.receipt_check import NodeKeys
from LLM_Mesh.node.service import NodeService
from tests.node.test_app import CHAT, COMPLETION, sse_events


async def test_a_stream_opens_with_the_prompt_count_its_usage_states(
    client: httpx.AsyncClient,
) -> None:
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)):
        r = await client.post(path, json={**body, "stream": True})
        assert r.status_code == 200, r.text
        final = sse_events(r.text)[-2]
        said = said_prompt_tokens(r.headers.get(HDR_PROMPT_TOKENS))
        assert said == final["usage"]["prompt_tokens"] > 0, path
        whole = await client.post(path, json=body)
        assert HDR_PROMPT_TOKENS not in whole.headers  # a whole answer has its usage


async def test_a_stream_the_gateway_named_opens_with_its_count_signed(
    client: httpx.AsyncClient, service: NodeService
) -> None:
    """Since 2026-12-06 (``money36``) the count comes signed by the node's receipt key
    (``X-Mesh-Prompt-Signature``) over the registry, the request id, the model and the count,
    which the gateway's check (``core/prompt_count.checked_claim``) takes: a gateway believes
    no count unsigned."""
    r = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"X-Request-Id": "req-1"}
    )
    assert r.status_code == 200, r.text
    said = said_prompt_tokens(r.headers.get(HDR_PROMPT_TOKENS))
    value = r.headers.get(HDR_PROMPT_SIGNATURE)
    registry_id = service.gateway.registry_id or ""
    check = {"registry_id": registry_id, "node_id": service.receipts.node_id,
             "request_id": "req-1", "model": CHAT["model"], "keys": NodeKeys()}  # fmt: skip
    claim = checked_claim(said, value, **check)
    assert claim is not None and claim.prompt_tokens == said > 0
    assert claim.node_key == service.receipts.node_key
    assert checked_claim(said + 1, value, **check) is None  # another count: not its word
    assert checked_claim(said, value, **{**check, "request_id": "req-2"}) is None
    assert checked_claim(said, None, **check) is None
