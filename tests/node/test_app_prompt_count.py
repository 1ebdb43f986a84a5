"""A node says a stream's prompt count as its answer opens (``X-Mesh-Prompt-Tokens``):
the count its final ``usage`` states, before its first token, so a gateway can charge a
stream the client cuts at the node's count (``core/prompt_count.py``; found 2026-12-06,
``money34``: the gateway's usual count, a third of a prompt of digits)."""

from __future__ import annotations

import httpx

from LLM_Mesh.core.prompt_count import HDR_PROMPT_TOKENS, said_prompt_tokens
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
