"""Client request ids (``Idempotency-Key`` or ``X-Request-Id``) are executed at most once.

Per gateway process, in memory (not in the store): an LRU of at most
``max_entries`` keys holding at most ``max_bytes`` of kept answers (body plus
headers), each kept ``ttl_s`` after its request finished. Over either bound the
oldest finished keys go first (a running one is never dropped: its duplicates
wait on it). Keys of clients with an API key and keys of anonymous clients are two
LRUs, each with those bounds (:func:`keyed`): anonymous requests with fresh ids (anyone
can send thousands, 6,000 a minute with the anonymous total) only push out anonymous
keys. Found 2026-12-05: one LRU for all, so such a flood pushed a keyed client's id out
within minutes, and its retry inside the 10 min got no replay (a lone registry's
``paid_ids`` refused it 409, so it was not paid twice; its answer was lost).

- A key seen for the first time runs the request (:meth:`IdempotencyCache.begin`
  returns ``None``).
- The same key while that request still runs: a non-stream waits for the first
  one's answer and gets the same bytes; a stream (either side) gets 409
  ``duplicate_request`` (a stream cannot be replayed).
- The same key after it finished: a non-stream answer is replayed (with
  ``X-Mesh-Replayed: true``) for ``ttl_s``; a stream answers 409 while it runs and for
  ``ttl_s`` after it ended. A stream's id is held from its request to its end, however
  long it runs: :meth:`IdempotencyCache.finish` (``None``) when it opens, then
  :meth:`IdempotencyCache.stream_ended` when it ends (the admission stage calls both,
  ``registry/admit.py``). Found 2026-12-03: its ``ttl_s`` ran from its opening, so a
  stream running longer than the window (10 min) was run, and paid, again by a retry
  with its id. A stream whose end is never told is held ``stream_hold_s`` (24 h) at most (a
  stream response the server never runs is ended 30 s after it was made: ``relay.START_S``).
  Answers that invite a retry (429, 5xx) are not kept, so a retry runs again; a
  stream's too when it was refused before it opened (a 502 for a node's non-200
  2xx/3xx), which frees its id like any other 5xx.
  An answer larger than ``max_bytes`` is not kept either, but its key is: a
  duplicate gets 409 rather than running twice.
- A keyed client's SDK attempt without an id of its own has an implicit key
  (``core/sdk_retry.py``: its scope, path and body bytes' digest) in a third LRU with the
  same bounds, held ``retry_window_s`` (60 s) after it ended, not ``ttl_s``: an attempt
  with count 0 always runs (:meth:`IdempotencyCache.begin_fresh` forgets the key's earlier
  end, or runs without the key while an identical attempt runs), its retries
  (:meth:`IdempotencyCache.begin`) wait, replay or are refused as above; its stream, once
  completed and paid, is kept whole (:meth:`IdempotencyCache.keep_stream`, within the byte
  bound) and replayed to its retry as one SSE answer (found 2026-12-05: refused 409, its
  paid answer lost; a stream still running, cut off or failed is refused as above).
- A request whose payment was (or may have been) written keeps its key whatever its end
  (``finish(..., paid=True)``): one cancelled while its payment was written (a gateway
  stopping past its grace), or a 5xx after it, has no answer to replay, and a duplicate
  gets 409 ``duplicate_request`` rather than running, and paying, again. A request that
  failed before any payment frees its key as above.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response

from LLM_Mesh.core.sdk_retry import DEFAULT_WINDOW_S, is_implicit
from LLM_Mesh.errors import DuplicateRequest

__all__ = ["DuplicateRequest", "IdempotencyCache", "Stored", "keyed", "paid_refusal", "said_id"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # kept answers, all keys together


# kept for replay, not replayed: the replay's Response sets these from its body
_NOT_REPLAYED = frozenset(("content-length", "content-type"))


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    media_type: str | None

    @classmethod
    def of(cls, response: Response) -> Stored:
        """What replaying ``response`` needs: status, body, media type and the headers
        the replay sets (not ``content-length``/``content-type``: derived from the body)."""
        headers = tuple(
            (k, v) for k, v in response.headers.items() if k.lower() not in _NOT_REPLAYED
        )
        return cls(response.status_code, bytes(response.body), headers, response.media_type)

    @property
    def size(self) -> int:
        """Bytes this answer holds (body and headers)."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers)

    def response(self) -> Response:
        r = Response(self.body, self.status, media_type=self.media_type)
        for k, v in self.headers:
            if k.lower() not in _NOT_REPLAYED:
                r.headers[k] = v
        r.headers["X-Mesh-Replayed"] = "true"
        return r


def keyed(key: str) -> bool:
    """Whether a cache key is a keyed client's: the admit stage's keys are ``path scope id
    [digest]``, a keyed client's scope ``key:<key id>`` (``Client.scope``); any other key
    (tests' own) is counted with the anonymous ones."""
    parts = key.split(" ", 2)
    return len(parts) > 1 and parts[1].startswith("key:")


def said_id(key: str) -> str:
    """The client's request id in a cache key (``path scope id``, an anonymous client's with
    its prompt's digest after it), as a 409 names it: before 2026-12-07 (replica41) the
    key's last word, so an anonymous client was told its prompt's digest as its id (the same
    id at every run of ``llm-mesh ask "hi"``), and an id holding a space only its end."""
    parts = key.split(" ", 2)
    if len(parts) < 3 or is_implicit(key):  # tests' own keys; an SDK attempt's digest
        return key.rsplit(" ", 1)[-1]
    return parts[2] if keyed(key) else parts[2].rsplit(" ", 1)[0]


def _side(key: str) -> int:
    """A key's book: 0 anonymous, 1 a keyed client's own id, 2 an implicit key."""
    return 2 if is_implicit(key) else int(keyed(key))


def paid_refusal(key: str) -> DuplicateRequest:
    """The 409 for a duplicate of a request that was paid but has no answer to replay."""
    return DuplicateRequest(
        f"a request with id {said_id(key)!r} was paid, but it ended without an "
        "answer to replay (cancelled or failed while its payment was written); it is never "
        "executed twice: send a new id to run it again",
        param="X-Request-Id",
    )


class _Entry:
    """One key. Slotted, and its :class:`asyncio.Event` made only when a duplicate waits
    on a running request (rare): the cache holds up to ``max_entries`` of these, and an
    Event per key was about a quarter of a finished key's memory."""

    __slots__ = (
        "_event", "expires", "finished", "open", "paid", "refusal", "result", "stream",
        "too_large",
    )  # fmt: skip

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.finished = False
        self._event: asyncio.Event | None = None
        self.result: Stored | None = None
        self.expires = float("inf")
        self.too_large = False  # finished, but its answer was over ``max_bytes``
        self.paid = False  # finished paid without an answer to keep (cancelled while paying)
        self.refusal: DuplicateRequest | None = None  # given to its waiters (another replica's run)
        self.open = False  # a stream that opened and has not ended yet: never evicted

    async def wait(self) -> None:
        """Until :meth:`finish` (returns at once when finished)."""
        if self.finished:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def finish(self) -> None:
        """Finished: wake the waiters, if any, and drop the Event."""
        self.finished = True
        if self._event is not None:
            self._event.set()
            self._event = None


class StreamBudget:
    """Bytes that the streams being kept (``relay.SseRelay.keep``) hold, all together, at
    most ``total``: found 2026-12-05 (review32), each stream could keep ``max_bytes`` of
    its own, so N concurrent keyed SDK streams held N times that."""

    __slots__ = ("total", "used")

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, n: int) -> bool:
        """Room for ``n`` more bytes, taken; ``False`` (nothing taken) when there is none."""
        if self.used + n > self.total:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        """``n`` bytes taken earlier are free again."""
        self.used = max(0, self.used - n)


class IdempotencyCache:
    """See the module docstring; ``clock`` is the runtime's monotonic clock."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        ttl_s: float = 600.0,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        stream_hold_s: float = 86_400.0,
        retry_window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1 or max_bytes < 1:
            raise ValueError("need ttl_s > 0, max_entries >= 1 and max_bytes >= 1")
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stream_hold_s = stream_hold_s  # the longest an open stream's id is held
        # how long an SDK attempt's implicit key is held after it ended (core/sdk_retry.py;
        # 0: none is made, admit.IdempotencyCheck)
        self.retry_window_s = retry_window_s
        # anonymous keys, keyed clients' keys, keyed SDK attempts' implicit keys: each its
        # own LRU and bounds (``_side``): a keyed client's every SDK request never pushes
        # out its own ids
        self._books: tuple[OrderedDict[str, _Entry], ...] = (
            OrderedDict(), OrderedDict(), OrderedDict()
        )  # fmt: skip
        self._kept = [0, 0, 0]  # bytes of kept answers, per book
        # bytes kept by SDK attempts' streams still running, all together (keep_stream)
        self.streams = StreamBudget(max_bytes)

    def __len__(self) -> int:
        return sum(len(b) for b in self._books)

    @property
    def bytes(self) -> int:
        """Bytes of kept answers now (at most ``max_bytes`` a book)."""
        return sum(self._kept)

    def _book(self, key: str) -> OrderedDict[str, _Entry]:
        return self._books[_side(key)]

    def held_for(self, key: str) -> float:
        """How long ``key`` is held after its request ended: an implicit key the window."""
        return self.retry_window_s if is_implicit(key) else self.ttl_s

    def _pop(self, key: str) -> _Entry | None:
        e = self._book(key).pop(key, None)
        if e is not None and e.result is not None:
            self._kept[_side(key)] -= e.result.size
        return e

    def _get(self, key: str) -> _Entry | None:
        e = self._book(key).get(key)
        if e is not None and e.expires <= self.clock():
            self._pop(key)
            return None
        return e

    async def begin(self, key: str, stream: bool) -> Response | None:
        """``None``: run the request (then call :meth:`finish`); else the answer to give."""
        e = self._get(key)
        if e is None:
            self._start(key, stream)
            return None
        if stream or e.stream:
            if stream and e.stream and e.result is not None and e.finished and not e.open:
                return e.result.response()  # an SDK attempt's completed stream, kept whole
            state = "finished" if e.finished and not e.open else "is running"
            raise DuplicateRequest(
                f"a request with id {key!r} {state}; a stream is never executed twice",
                param="X-Request-Id",
            )
        await e.wait()
        if e.refusal is not None:
            raise e.refusal
        if e.too_large:
            raise DuplicateRequest(
                f"a request with id {key!r} finished; its answer was too large to keep "
                "for replay, and it is never executed twice",
                param="X-Request-Id",
            )
        if e.paid:
            raise paid_refusal(key)
        if e.result is None:  # the first one ended in a retryable error: run this one
            return await self.begin(key, stream)
        return e.result.response()

    async def begin_fresh(self, key: str, stream: bool) -> bool:
        """A first attempt under an implicit key (``core/sdk_retry.py``): it always runs.
        ``True``: it is the key's run now (call :meth:`finish` as after :meth:`begin`), an
        earlier end of the key forgotten; ``False``: run it without the key (an identical
        attempt of the same client runs now: its retries keep waiting on that one)."""
        return self._fresh(key, stream)

    def _fresh(self, key: str, stream: bool) -> bool:
        """:meth:`begin_fresh` in this process (no await: nothing runs in between)."""
        e = self._get(key)
        if e is not None and not (e.finished and not e.open):
            return False
        self._pop(key)
        self._start(key, stream)
        return True

    def _start(self, key: str, stream: bool) -> None:
        book = self._book(key)
        book[key] = _Entry(stream)
        book.move_to_end(key)
        self._evict(key)

    def _evict(self, key: str) -> None:
        """Drop the oldest *finished* entries of ``key``'s book while it is over
        ``max_entries`` or ``max_bytes``.

        A running entry is never dropped: its duplicates wait on it, and
        :meth:`finish` finds it by key (so beyond the bound: requests running now).
        A running entry holds no answer yet, so the byte bound always holds.
        """
        side = _side(key)
        book, kept = self._books[side], self._kept[side]
        over = len(book) - self.max_entries
        if over <= 0 and kept <= self.max_bytes:
            return
        victims: list[str] = []
        freed = 0
        now = self.clock()
        for key, e in book.items():  # oldest first; usually the first one goes
            if over <= len(victims) and kept - freed <= self.max_bytes:
                break
            if e.finished and (not e.open or e.expires <= now):  # an open stream runs
                victims.append(key)
                freed += e.result.size if e.result is not None else 0
        for key in victims:
            self._pop(key)

    def holds(self, key: str) -> bool:
        """Whether ``key`` is here (running, or finished and not expired)."""
        return self._get(key) is not None

    def kept(self, key: str) -> tuple[Stored | None, bool] | None:
        """A finished key's ``(answer kept, too large)``; ``None`` if not kept (or running)."""
        e = self._book(key).get(key)
        if e is None or not e.finished:
            return None
        return e.result, e.too_large

    def is_open(self, key: str) -> bool:
        """Whether ``key`` is a stream that opened and has not ended."""
        e = self._book(key).get(key)
        return e is not None and e.open

    def paid_unanswered(self, key: str) -> bool:
        """Whether the finished ``key`` is held with no answer because it was paid."""
        e = self._book(key).get(key)
        return e is not None and e.finished and e.paid

    def refuse(self, key: str, refusal: DuplicateRequest) -> None:
        """The running key's duplicates here get ``refusal`` (another replica holds the id)."""
        e = self._pop(key)
        if e is not None:
            e.refusal = refusal
            e.finish()

    def abandon(self, key: str) -> None:
        """The request under ``key`` failed before it ran: forget it (a retry runs)."""
        e = self._pop(key)
        if e is not None:
            e.finish()

    async def settled(self, key: str) -> None:
        """Awaited after :meth:`finish` or :meth:`abandon`, before the answer goes out:
        nothing to wait for here (a store-backed cache frees a key in its store first:
        :mod:`~LLM_Mesh.registry.shared_idempotency`)."""

    def finish(self, key: str, response: Response | None, *, paid: bool = False) -> None:
        """The request under ``key`` ended with ``response`` (``None``: a stream that
        opened, held until :meth:`stream_ended`, or a request that failed; a stream refused before it opened gives its answer, a 429 or
        5xx of which frees the key). ``paid``: its payment was (or may have been) written:
        an end that would free the key keeps it instead, with no answer (duplicates: 409)."""
        e = self._book(key).get(key)
        if e is None or e.finished:
            return
        retry = response is not None and (
            response.status_code >= 500 or response.status_code == 429
        )  # a stream's too: one refused before it opened (e.g. a 502) never ran
        keep = not retry and (e.stream or response is not None)
        if paid and not keep:  # never run (and paid) again: held, nothing to replay
            e.paid = keep = True
        elif response is not None and keep and not e.stream:
            stored = Stored.of(response)
            if stored.size > self.max_bytes:
                e.too_large = True
            else:
                e.result = stored
                self._kept[_side(key)] += stored.size
        e.finish()
        if keep and e.stream and response is None:  # opened: held until it ends
            e.open = True
            e.expires = self.clock() + self.stream_hold_s
            self._book(key).move_to_end(key)
            self._evict(key)
        elif keep:
            e.expires = self.clock() + self.held_for(key)
            self._book(key).move_to_end(key)
            self._evict(key)
        else:
            self._pop(key)

    def keep_stream(self, key: str, answer: Response) -> None:
        """The open stream under an implicit key (an SDK attempt's) completed, paid, and
        ``answer`` is all of it (``relay.ProxyStream.kept_answer``): kept for its retries
        (within the byte bound), which get it replayed instead of 409. Before
        :meth:`stream_ended`."""
        e = self._book(key).get(key)
        if e is not None and e.open and is_implicit(key):
            self._keep(key, e, Stored.of(answer))

    def keep_replayed(self, key: str, answer: Response) -> None:
        """A kept stream replayed from elsewhere (a store) to the finished stream ``key``:
        kept here too, so a duplicate here gets it as well (:meth:`finish` keeps none)."""
        e = self._book(key).get(key)
        if e is not None and e.stream and e.finished and not e.open and is_implicit(key):
            self._keep(key, e, Stored.of(answer))

    def _keep(self, key: str, e: _Entry, stored: Stored) -> None:
        """``stored`` as ``e``'s answer, unless it has one or it is over ``max_bytes``."""
        if e.result is None and stored.size <= self.max_bytes:
            e.result = stored
            self._kept[_side(key)] += stored.size

    def stream_ended(self, key: str) -> None:
        """The stream under ``key`` (opened: :meth:`finish` with ``None``) ended, however:
        its id is held ``ttl_s`` from now. Until then it was held as running, for at most
        ``stream_hold_s``."""
        e = self._book(key).get(key)
        if e is None or not e.open:
            return
        e.open = False
        e.expires = self.clock() + self.held_for(key)
        self._book(key).move_to_end(key)
        if e.result is not None:  # a kept stream (keep_stream): the byte bound holds
            self._evict(key)
