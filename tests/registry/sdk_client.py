"""The openai SDK's async client on an in-process registry app (no socket)."""

from __future__ import annotations

import httpx
import openai

from tests.registry.helpers import Harness


def sdk_client(h: Harness) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` talking to ``h.app`` over the ASGI transport, no retries."""
    return openai.AsyncOpenAI(
        base_url="http://mesh/v1",
        api_key="anonymous",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app)),
    )
