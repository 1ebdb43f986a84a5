"""``LifespanLoop`` (``lifespan_loop.py``) under uvicorn's own lifespan driver.

Found 2026-12-05: each worker of ``registry serve --workers N`` logged ``ASGI 'lifespan'
protocol appears unsupported.`` after ``Finished server process`` at every stop. Its loops
(the heartbeat around the heap trimmer) were cancelled only after the app had sent
``lifespan.shutdown.complete``: uvicorn stops waiting there, ``asyncio.run`` then cancelled
the lifespan's still unfinished task, and uvicorn took the cancel for an app without a
lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn

from LLM_Mesh.lifespan_loop import LifespanLoop


class _Idle(LifespanLoop):
    __slots__ = ()

    async def _loop(self) -> None:
        await asyncio.Event().wait()


async def test_the_lifespan_has_ended_once_uvicorn_hears_its_shutdown_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app: Any = _Idle(_Idle(Starlette()))  # a worker: the heartbeat around the heap's trimmer
    config = Config(app=app, lifespan="auto", log_config=None)
    config.load()
    lifespan = LifespanOn(config)
    before = asyncio.all_tasks()
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        await lifespan.startup()
        await lifespan.shutdown()
        left = [t for t in asyncio.all_tasks() - before if not t.done()]
        for task in left:  # what asyncio.run does to the tasks left when the server returns
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
    assert "unsupported" not in caplog.text and not lifespan.shutdown_failed
    assert left == []  # the lifespan had ended: nothing of it left to cancel
