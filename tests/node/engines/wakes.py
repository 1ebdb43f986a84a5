"""Counting the engine worker's thread → loop hand-offs (``call_soon_threadsafe``): how
often ``batches_in_thread`` wakes the event loop (``test_base.py``,
``test_stream_interval.py``)."""

from __future__ import annotations

import asyncio

import pytest


def count_wakes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every thread → loop hand-off (``call_soon_threadsafe``) on the running loop from now
    on: the callbacks handed over, in order (``monkeypatch`` undoes it)."""
    loop = asyncio.get_running_loop()
    wakes: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(*a: object, **k: object) -> object:
        wakes.append(a[0])
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    return wakes
