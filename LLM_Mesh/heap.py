"""Keep a long-running server's C heap from creeping: glibc's arenas capped, free pages
handed back.

A gateway under steady load grew about 9 MB per 10 minutes with glibc's defaults and
no Python objects to show for it (docs/benchmarks.md, "Gateway memory"): glibc gives
each thread that allocates under contention an arena of its own (up to 8 per core), and
the SQLite, settlement and executor threads each fragment theirs. Two standard glibc
controls, both documented in ``mallopt(3)`` and ``malloc_trim(3)``, called through
:mod:`ctypes`:

- :func:`cap_arenas` sets ``M_ARENA_MAX`` (what the ``MALLOC_ARENA_MAX`` environment
  variable sets) before the server starts its threads;
- :func:`trim_periodically` wraps a server's ASGI app: from its lifespan's startup on,
  ``malloc_trim(0)`` runs every ``interval_s`` seconds, returning whole free pages
  inside the heaps to the kernel.

Both are no-ops where the C library is not glibc (musl, macOS): :func:`libc` is None.
``registry serve`` and ``node start`` use them, with ``Settings.malloc_arena_max`` and
``Settings.malloc_trim_s``; an operator's own ``MALLOC_ARENA_MAX`` wins (glibc read it
at start; the settings then leave the arenas alone).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from functools import cache
from typing import Any, Protocol

from starlette.types import ASGIApp

from LLM_Mesh.lifespan_loop import LifespanLoop

__all__ = ["Libc", "cap_arenas", "libc", "trim", "trim_periodically"]

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


class Libc(Protocol):
    """The two glibc calls used here (a ``ctypes.CDLL`` or a test double)."""

    def mallopt(self, param: int, value: int) -> int: ...
    def malloc_trim(self, pad: int) -> int: ...


@cache
def libc() -> Libc | None:
    """glibc, when this process runs on it (else None: nothing to tune)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib: Any = ctypes.CDLL(name)
        lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.mallopt.restype = ctypes.c_int
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc: no mallopt / malloc_trim
        return None
    return lib  # type: ignore[no-any-return]


def cap_arenas(arenas: int, lib: Libc | None = None) -> bool:
    """At most ``arenas`` malloc arenas from now on (0: leave glibc's default).

    Call it before the server starts threads: a thread keeps the arena it already has.
    Returns whether the cap was set.
    """
    if arenas <= 0:
        return False
    lib = lib if lib is not None else libc()
    if lib is None:
        return False
    ok = lib.mallopt(M_ARENA_MAX, arenas) == 1  # mallopt returns 1 on success
    if not ok:
        log.warning("mallopt(M_ARENA_MAX, %d) failed; glibc's default arenas stay", arenas)
    return ok


def trim(lib: Libc | None = None) -> bool:
    """Return free heap pages to the kernel now; whether any memory was released."""
    lib = lib if lib is not None else libc()
    return lib is not None and lib.malloc_trim(0) == 1


class _TrimPeriodically(LifespanLoop):
    __slots__ = ("interval_s", "lib", "trims")

    def __init__(self, app: ASGIApp, interval_s: float, lib: Libc | None) -> None:
        super().__init__(app)
        self.interval_s = interval_s
        self.lib = lib
        self.trims = 0

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            started = time.perf_counter()
            trim(self.lib)
            self.trims += 1
            log.debug("malloc_trim took %.1f ms", (time.perf_counter() - started) * 1000.0)


def trim_periodically(app: ASGIApp, interval_s: float, lib: Libc | None = None) -> ASGIApp:
    """``app`` that trims the C heap every ``interval_s`` seconds while its lifespan runs
    (module doc); ``app`` itself when ``interval_s`` is 0 or there is no glibc."""
    if interval_s <= 0 or (lib if lib is not None else libc()) is None:
        return app
    return _TrimPeriodically(app, interval_s, lib)
