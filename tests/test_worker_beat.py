"""A ``--workers N`` worker's heartbeat (``worker_beat.py``): from its lifespan's startup
on, its event loop sets the file's modification time; a blocked loop goes silent."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh import worker_beat


def _lifespan(stop: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await stop.wait()

    return app


async def _startup(*_a: Any) -> dict[str, str]:
    return {"type": "lifespan.startup"}


async def _beats_to(app: Any, n: int) -> None:
    for _ in range(500):
        if app.beats >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{app.beats} beats")


async def test_the_loop_beats_while_the_lifespan_runs_and_not_when_blocked_or_after(
    tmp_path: Path,
) -> None:
    beat = tmp_path / "worker-0"
    beat.write_bytes(b"")
    os.utime(beat, ns=(0, 0))
    stop = asyncio.Event()
    app: Any = worker_beat.beat_for_supervisor(_lifespan(stop), str(beat), 0.01)
    served = asyncio.create_task(app({"type": "lifespan"}, _startup, _startup))
    await _beats_to(app, 3)
    assert beat.stat().st_mtime > time.time() - 60  # set to now
    before = app.beats
    time.sleep(0.1)  # noqa: ASYNC251 - the loop blocked on purpose: no beat meanwhile
    assert app.beats == before
    await _beats_to(app, before + 2)
    stop.set()
    await served
    after = app.beats
    await asyncio.sleep(0.05)
    assert app.beats == after  # the beat ended with the lifespan


async def test_a_missing_file_is_no_fault(tmp_path: Path) -> None:
    stop = asyncio.Event()
    app: Any = worker_beat.beat_for_supervisor(_lifespan(stop), str(tmp_path / "gone"), 0.01)
    served = asyncio.create_task(app({"type": "lifespan"}, _startup, _startup))
    await asyncio.sleep(0.05)
    assert app.beats == 0 and not served.done()  # the supervisor stopping: serving goes on
    stop.set()
    await served


def test_without_the_supervisors_file_nothing_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    monkeypatch.delenv(worker_beat.HEARTBEAT_ENV, raising=False)
    assert worker_beat.beat_for_supervisor(app) is app
    monkeypatch.setenv(worker_beat.HEARTBEAT_ENV, "/run/x/worker-0")
    assert worker_beat.beat_for_supervisor(app) is not app
