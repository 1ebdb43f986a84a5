"""Client request ids (``Idempotency-Key`` or ``X-Request-Id``) are executed at most once.

Per gateway process, in memory (not in the store): a bounded LRU of
``max_entries`` keys, each kept ``ttl_s`` after its request finished.

- A key seen for the first time runs the request (:meth:`IdempotencyCache.begin`
  returns ``None``).
- The same key while that request still runs: a non-stream waits for the first
  one's answer and gets the same bytes; a stream (either side) gets 409
  ``duplicate_request`` (a stream cannot be replayed).
- The same key after it finished: a non-stream answer is replayed (with
  ``X-Mesh-Replayed: true``) for ``ttl_s``; a finished stream answers 409.
  Answers that invite a retry (429, 5xx) are not kept, so a retry runs again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.responses import Response

from LLM_Mesh.errors import MeshError

__all__ = ["DuplicateRequest", "IdempotencyCache", "Stored"]


class DuplicateRequest(MeshError):
    status = 409
    type = "invalid_request_error"
    code = "duplicate_request"


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    media_type: str | None

    def response(self) -> Response:
        r = Response(self.body, self.status, media_type=self.media_type)
        for k, v in self.headers:
            if k.lower() not in ("content-length", "content-type"):
                r.headers[k] = v
        r.headers["X-Mesh-Replayed"] = "true"
        return r


@dataclass
class _Entry:
    stream: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    result: Stored | None = None
    expires: float = float("inf")


class IdempotencyCache:
    """See the module docstring; ``clock`` is the runtime's monotonic clock."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        ttl_s: float = 600.0,
        max_entries: int = 10_000,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("need ttl_s > 0 and max_entries >= 1")
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: str) -> _Entry | None:
        e = self._entries.get(key)
        if e is not None and e.expires <= self.clock():
            del self._entries[key]
            return None
        return e

    async def begin(self, key: str, stream: bool) -> Response | None:
        """``None``: run the request (then call :meth:`finish`); else the answer to give."""
        e = self._get(key)
        if e is None:
            self._entries[key] = _Entry(stream)
            self._entries.move_to_end(key)
            self._evict()
            return None
        if stream or e.stream:
            state = "finished" if e.done.is_set() else "is running"
            raise DuplicateRequest(
                f"a request with id {key!r} {state}; a stream is never executed twice",
                param="X-Request-Id",
            )
        if not e.done.is_set():
            await e.done.wait()
        if e.result is None:  # the first one ended in a retryable error: run this one
            return await self.begin(key, stream)
        return e.result.response()

    def _evict(self) -> None:
        """Drop the oldest *finished* entries over ``max_entries``.

        A running entry is never dropped: its duplicates wait on it, and
        :meth:`finish` finds it by key (so beyond the bound: requests running now).
        """
        over = len(self._entries) - self.max_entries
        if over <= 0:
            return
        victims: list[str] = []
        for key, e in self._entries.items():  # oldest first; usually the first one goes
            if e.done.is_set():
                victims.append(key)
                if len(victims) == over:
                    break
        for key in victims:
            del self._entries[key]

    def abandon(self, key: str) -> None:
        """The request under ``key`` failed before it ran: forget it (a retry runs)."""
        e = self._entries.pop(key, None)
        if e is not None:
            e.done.set()

    def finish(self, key: str, response: Response | None) -> None:
        """The request under ``key`` ended with ``response`` (``None``: a stream, or failed)."""
        e = self._entries.get(key)
        if e is None or e.done.is_set():
            return
        keep = e.stream or (
            response is not None and response.status_code < 500 and response.status_code != 429
        )
        if response is not None and keep and not e.stream:
            e.result = Stored(
                response.status_code,
                bytes(response.body),
                tuple(response.headers.items()),
                response.media_type,
            )
        e.done.set()
        if keep:
            e.expires = self.clock() + self.ttl_s
        else:
            self._entries.pop(key, None)
