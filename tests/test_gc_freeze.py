"""The startup freeze (LLM_Mesh/gc_freeze.py): objects alive after the lifespan's startup are
frozen, not before it, and other scopes pass through untouched."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from LLM_Mesh.gc_freeze import freeze_after_startup


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_frozen_once_startup_is_complete_not_before() -> None:
    seen: list[tuple[str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        seen.append(("before", gc.get_freeze_count()))
        await send({"type": "lifespan.startup.complete"})
        seen.append(("after", gc.get_freeze_count()))

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await freeze_after_startup(app)({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}]
    assert seen[0] == ("before", 0) and seen[1][1] > 1000


async def test_requests_pass_through_and_freeze_nothing() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def noop(*_a: Any) -> Any:
        return None

    await freeze_after_startup(app)({"type": "http"}, noop, noop)
    assert calls == ["http"] and gc.get_freeze_count() == 0
