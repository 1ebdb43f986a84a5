"""The C heap controls (LLM_Mesh/heap.py): the arena cap and the periodic trim, with a
stand-in for glibc, and once against this machine's own C library."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from LLM_Mesh import heap
from LLM_Mesh.config import Settings


class FakeLibc:
    def __init__(self, mallopt_result: int = 1) -> None:
        self.mallopt_calls: list[tuple[int, int]] = []
        self.trims = 0
        self.mallopt_result = mallopt_result

    def mallopt(self, param: int, value: int) -> int:
        self.mallopt_calls.append((param, value))
        return self.mallopt_result

    def malloc_trim(self, pad: int) -> int:
        assert pad == 0
        self.trims += 1
        return 1


def test_the_cap_sets_glibcs_arena_max() -> None:
    lib = FakeLibc()
    assert heap.cap_arenas(2, lib) is True
    assert lib.mallopt_calls == [(-8, 2)]  # M_ARENA_MAX in glibc's malloc.h


def test_zero_arenas_leaves_glibc_alone() -> None:
    lib = FakeLibc()
    assert heap.cap_arenas(0, lib) is False
    assert lib.mallopt_calls == []


def test_a_refused_cap_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    lib = FakeLibc(mallopt_result=0)
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.heap"):
        assert heap.cap_arenas(4, lib) is False
    assert "M_ARENA_MAX" in caplog.text


def test_this_machines_glibc_takes_both_calls() -> None:
    lib = heap.libc()
    if lib is None:
        pytest.skip("not glibc")
    assert heap.cap_arenas(8, lib) is True  # 8: the cap on these test processes is harmless
    assert isinstance(heap.trim(lib), bool)


def _lifespan(events: list[str], stop: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            events.append(scope["type"])
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await stop.wait()
        events.append("shutdown")

    return app


async def _noop(*_a: Any) -> dict[str, str]:
    return {"type": "lifespan.startup"}


async def test_the_heap_is_trimmed_while_the_lifespan_runs_and_not_after() -> None:
    lib, events, stop = FakeLibc(), [], asyncio.Event()
    app = heap.trim_periodically(_lifespan(events, stop), 0.01, lib)
    served = asyncio.create_task(app({"type": "lifespan"}, _noop, _noop))
    for _ in range(500):
        if lib.trims >= 3:
            break
        await asyncio.sleep(0.01)
    assert lib.trims >= 3
    stop.set()
    await served
    after = lib.trims
    await asyncio.sleep(0.05)
    assert lib.trims == after and events == ["shutdown"]  # the loop ended with the lifespan


async def test_requests_pass_through_untrimmed() -> None:
    lib, events = FakeLibc(), []
    app = heap.trim_periodically(_lifespan(events, asyncio.Event()), 0.01, lib)
    await app({"type": "http"}, _noop, _noop)
    await asyncio.sleep(0.03)
    assert events == ["http"] and lib.trims == 0


def test_no_interval_means_no_wrapper() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    assert heap.trim_periodically(app, 0, FakeLibc()) is app


def test_settings_defaults_and_the_operators_own_variable() -> None:
    s = Settings.from_env({})
    assert (s.malloc_arena_max, s.malloc_trim_s) == (2, 60.0)
    s = Settings.from_env({"LLM_MESH_MALLOC_ARENA_MAX": "4", "LLM_MESH_MALLOC_TRIM_S": "0"})
    assert (s.malloc_arena_max, s.malloc_trim_s) == (4, 0.0)
    # glibc already applied MALLOC_ARENA_MAX at start: the setting must not override it
    assert Settings.from_env({"MALLOC_ARENA_MAX": "1"}).malloc_arena_max == 0
    with pytest.raises(ValueError, match="LLM_MESH_MALLOC_TRIM_S"):
        Settings.from_env({"LLM_MESH_MALLOC_TRIM_S": "-1"})
