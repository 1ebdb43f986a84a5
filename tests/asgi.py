"""A client for calling an ASGI app directly in tests (no server, no socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["request_then_wait"]


def request_then_wait(
    body: bytes, gone: asyncio.Event | None = None
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive``: the whole request body at the first call, then
    ``http.disconnect`` once ``gone`` is set (never, without one: the client stays)."""
    sent = False
    stays = asyncio.Event() if gone is None else gone

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await stays.wait()
        return {"type": "http.disconnect"}

    return receive
