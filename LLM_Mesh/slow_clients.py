"""Slow clients: how long a connection may take to send one request (slowloris, slow POST).

uvicorn (0.54, httptools) arms no timer until a first response is sent: a connection that
connects and says nothing, sends its headers a byte at a time, or its body slower still,
is held for ever, and a few thousand such connections use up the server's file
descriptors. :func:`guarded_http` is uvicorn's own protocol with one timer more: from the
connection's start, and from the first byte of each request, to the end of that request's
body; past ``read_timeout_s`` the connection is closed (a request being handled hears
``http.disconnect``). Between requests uvicorn's own keep-alive timeout applies; an answer,
however long it streams, is not limited.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["READ_TIMEOUT_S", "guarded_http"]

READ_TIMEOUT_S = 30.0  # 1 MiB (the largest body) in 30 s is ~280 kbit/s


class _Guarded(HttpToolsProtocol):
    read_timeout_s = READ_TIMEOUT_S
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        transport: Any = self.transport
        if not transport.is_closing():
            transport.close()


def guarded_http(read_timeout_s: float = READ_TIMEOUT_S) -> type[Any]:
    """uvicorn's ``http=`` protocol class with the read timeout (see the module docstring)."""
    if read_timeout_s <= 0:
        raise ValueError("read_timeout_s must be positive")
    return type("GuardedHttpToolsProtocol", (_Guarded,), {"read_timeout_s": read_timeout_s})
