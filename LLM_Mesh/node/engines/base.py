"""The engine contract: what a node's HTTP layer asks of a model backend.

An :class:`Engine` lists the models it serves and streams a generation as
:class:`Delta` pieces. The last delta of a finished generation carries
``finish_reason`` and :class:`Usage`; a cancelled generation (the cancel flag
was set: the client went away) simply stops, possibly without that final delta.

Blocking inference never runs on the event loop: :func:`batches_in_thread`
drives a blocking iterator in a worker thread (an engine's long-lived
:class:`EngineWorker`, or a new thread) and hands its items to the loop in
batches: the worker appends to a buffer and wakes the loop
(``loop.call_soon_threadsafe``) only when no wake-up is pending, and the loop
takes everything buffered at once. :meth:`Engine.stream_batches` is a
generation in such batches (one delta each, by default); the node's SSE writer
sends each batch in one write.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

from LLM_Mesh.core.canary import TokenLogprob
from LLM_Mesh.core.schemas import HostedModel

CancelFlag = Union[asyncio.Event, threading.Event]
"""Anything with ``is_set()``; engines check it between tokens."""

DEFAULT_MAX_TOKENS = 256
"""Completion budget when a request names none (capped by the context left)."""

PENALTY_RANGE = (-2.0, 2.0)
"""OpenAI's range for ``presence_penalty`` and ``frequency_penalty`` (also the request
models', ``core/schemas.py``)."""

T = TypeVar("T")


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, already validated by the HTTP layer."""

    kind: Literal["chat", "completion"]
    model: str
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    continue_text: str | None = None
    """Chat only: the assistant text already sent (``mesh_continue``); generate what follows."""
    top_logprobs: int | None = None
    """Return each generated token's log-probability and this many top candidates
    (``logprobs`` / ``top_logprobs`` of the OpenAI request); None: none."""
    presence_penalty: float | None = None
    """OpenAI's: subtracted once from the logit of every token already in the text; in
    [-2, 2] (:data:`PENALTY_RANGE`); None: 0."""
    frequency_penalty: float | None = None
    """OpenAI's: subtracted from a token's logit once per time it occurs; None: 0."""

    def __post_init__(self) -> None:
        if self.kind == "chat" and not self.messages:
            raise ValueError("a chat generation needs messages")
        if self.kind == "completion" and self.prompt is None:
            raise ValueError("a completion generation needs a prompt")
        if self.kind not in ("chat", "completion"):
            raise ValueError(f"unknown generation kind {self.kind!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.continue_text is not None and self.kind != "chat":
            raise ValueError("continue_text is for chat generations only")
        if self.top_logprobs is not None and self.top_logprobs < 0:
            raise ValueError("top_logprobs must be at least 0")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            low, high = PENALTY_RANGE
            if value is not None and not low <= value <= high:  # (NaN too)
                raise ValueError(f"{name} must be between {low} and {high}")

    def text_for_estimate(self) -> str:
        """All prompt text, for engines without a tokenizer."""
        if self.kind == "completion":
            return self.prompt or ""
        text = "\n".join(message_text(m) for m in self.messages or [])
        return text + (self.continue_text or "")


def message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI chat message (string or list-of-parts content)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Delta:
    """A piece of generated text; the last one has ``finish_reason`` and ``usage``
    (and, when the request asked for them, every token's ``logprobs``). The first may say
    ``prompt_tokens``, the prompt's count as ``usage`` will (an engine that knows it
    before its first token: ``llama-cpp``, ``sim``): the node tells the gateway early
    (``X-Mesh-Prompt-Tokens``), what a stream the client cuts is charged for its prompt."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    prompt_tokens: int | None = None


class Engine(abc.ABC):
    """A model backend. Subclasses set ``name`` and ``simulated``."""

    name: str = "engine"
    simulated: bool = False
    supports_continuation: bool = False
    """Whether :attr:`GenerationRequest.continue_text` is honoured (``mesh_continue``)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load models / open connections. Called once before serving."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Safe to call more than once."""

    @abc.abstractmethod
    def models(self) -> list[HostedModel]:
        """The models served, with their effective ``context_length``."""

    @abc.abstractmethod
    def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        """Generate for ``req``; stop early once ``cancel`` is set."""

    async def stream_batches(
        self, req: GenerationRequest, cancel: CancelFlag
    ) -> AsyncIterator[list[Delta]]:
        """:meth:`stream` in batches: each one the deltas that are ready together (one
        or more, in order). Engines that generate in a thread override it
        (:func:`batches_in_thread`); this default yields one delta per batch."""
        agen = self.stream(req, cancel)
        try:
            async for delta in agen:
                yield [delta]
        finally:
            closer = getattr(agen, "aclose", None)
            if closer is not None:
                await closer()

    def model_ids(self) -> list[str]:
        return [m.id for m in self.models()]


_ITEM, _ERROR, _DONE = "item", "error", "done"


class EngineWorker:
    """One long-lived daemon thread that runs blocking jobs one after another.

    An engine keeps one per model, so every generation of a model runs on the
    same OS thread: llama.cpp's OpenMP thread team (created per calling thread)
    and the thread's caches are set up once, not per request. Starting a thread
    per request measured 20-40 ms slower to first token on a loaded 2-core box
    (docs/benchmarks.md). A job waiting its turn waits as it would for the
    model's lock.
    """

    def __init__(self, name: str = "llm-mesh-engine") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the worker thread (started on first use); it must not raise."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine worker is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def close(self) -> None:
        """Stop after the jobs already submitted (does not wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._jobs.put(None)


FIRST_ITEM_HOLD_S = 0.05
"""How long the worker waits, after the first item, for the consumer to ask for the second."""

FIRST_ITEM_RELAY_S = 0.005
"""After that, how long the worker leaves the cores to the first token's relay (the
gateway's and the client's processes) when its model computes on every core: without it,
the second token's compute takes every core the moment the node has written the first,
and the first token waits in the gateway for a core (engines pass it as ``settle_s``)."""


async def batches_in_thread(
    make_iter: Callable[[threading.Event], Iterator[T]],
    cancel: CancelFlag,
    *,
    worker: EngineWorker | None = None,
    hold_first_s: float = 0.0,
    settle_s: float = 0.0,
    interval_s: float = 0.0,
) -> AsyncGenerator[list[T], None]:
    """Run a blocking iterator in a worker thread; yield its items on the loop, in
    batches: every item that is ready when the consumer asks (at least one, in order).

    The worker appends each item to a buffer and wakes the loop only when no wake-up
    is pending already, so items that come faster than the loop drains them cost one
    thread → loop hand-off per batch, not per item, and the consumer can write them
    in one go (the node's SSE writer does: one socket write per batch).

    ``make_iter`` receives a ``threading.Event`` that is set once the consumer
    is gone or ``cancel`` is set; the worker also checks both after every item
    and stops iterating (closing the iterator) as soon as either is set.
    Exceptions raised in the worker are re-raised here, after the items before them.

    ``worker``: run on that long-lived thread (else a new thread for this call).
    ``hold_first_s``: after the first item the worker waits, at most that long,
    until the consumer asks for the next batch, so the first token is on its way
    (response started, first chunk written) before the next token's compute
    takes every core again. ``settle_s``: once the consumer asked (the first item is
    written), the worker waits that much longer before the next item, so the processes
    that relay the first item further get a core (:data:`FIRST_ITEM_RELAY_S`).

    ``interval_s`` (the node's ``stream_interval_s``; 0: off): after the first batch,
    which goes out at once, at most one batch per ``interval_s``: once a batch is handed
    out the consumer sleeps until ``interval_s`` after it, the worker not waking the loop
    for the items it adds meanwhile, then takes them all (none yet: it sleeps on until the
    next item's wake-up, not woken by the timer for nothing). The end of the iteration (or
    its exception) wakes it at once: the last batch is never held back. So a stream of
    80 items a second costs the loop (and the SSE writer, and the processes downstream)
    one wake-up per interval, not one per item.
    """
    loop = asyncio.get_running_loop()
    buf: collections.deque[T] = collections.deque()
    end: list[BaseException | None] = []  # set once by the worker: [None] done, [exc] failed
    gone = threading.Event()
    pulled = threading.Event()
    armed = False  # a wake-up is scheduled on the loop and has not run yet
    holding = False  # the consumer sleeps out the interval: only the end wakes it
    waiter: asyncio.Future[None] | None = None

    def release() -> None:  # on the loop
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake() -> None:  # on the loop
        nonlocal armed
        armed = False
        release()

    def interval_up() -> None:  # on the loop
        nonlocal holding
        holding = False  # first: an item added after the check below signals itself
        if buf or end:
            release()  # else the consumer sleeps on until the next item's wake-up

    def signal(final: bool = False) -> None:  # in the worker, after adding to buf or end
        nonlocal armed
        if armed or (holding and not final):  # (the consumer re-checks buf after its hold)
            return
        armed = True
        try:
            loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop is closed: nobody listens any more
            gone.set()

    def work() -> None:
        if gone.is_set() or cancel.is_set():  # the consumer left while this waited its turn
            end.append(None)
            signal(final=True)
            return
        try:
            it = make_iter(gone)
            try:
                first = True
                for item in it:
                    if gone.is_set() or cancel.is_set():
                        gone.set()
                        break
                    buf.append(item)
                    signal()
                    if first and hold_first_s > 0:
                        first = False
                        if pulled.wait(hold_first_s) and settle_s > 0 and not gone.is_set():
                            time.sleep(settle_s)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            end.append(exc)
            signal(final=True)
            return
        end.append(None)
        signal(final=True)

    if worker is None:
        threading.Thread(target=work, name="llm-mesh-engine", daemon=True).start()
    else:
        worker.submit(work)
    timer: asyncio.TimerHandle | None = None
    try:
        batches = 0
        last = 0.0  # when the last batch was handed out (loop time)
        while True:
            if interval_s > 0 and batches and not end:
                delay = last + interval_s - loop.time()
                if delay > 0:  # sleep it out; the worker's items do not wake the loop
                    waiter = loop.create_future()
                    holding = True
                    if not end:  # (else it came since the check: its wake-up may be skipped)
                        timer = loop.call_later(delay, interval_up)
                        try:
                            await waiter
                        finally:
                            timer.cancel()
                            timer = None
                    holding = False  # before buf is read again: no item is left unsignalled
                    waiter = None
                    continue
            if buf:
                batch = list(buf)  # the worker only appends; take exactly what was there
                for _ in batch:
                    buf.popleft()
                batches += 1
                last = loop.time()
                yield batch
                if batches == 1:
                    pulled.set()
                continue
            if end:
                if end[0] is not None:
                    raise end[0]
                return
            waiter = loop.create_future()
            if buf or end:  # came in since the check (its wake-up may be pending)
                waiter = None
                continue
            await waiter
            waiter = None
    finally:
        if timer is not None:
            timer.cancel()
        gone.set()
        pulled.set()


async def iterate_in_thread(
    make_iter: Callable[[threading.Event], Iterator[T]],
    cancel: CancelFlag,
    *,
    worker: EngineWorker | None = None,
    hold_first_s: float = 0.0,
    settle_s: float = 0.0,
    interval_s: float = 0.0,
) -> AsyncIterator[T]:
    """:func:`batches_in_thread`, one item at a time."""
    batches = batches_in_thread(
        make_iter, cancel, worker=worker, hold_first_s=hold_first_s, settle_s=settle_s,
        interval_s=interval_s,
    )  # fmt: skip
    try:
        async for batch in batches:
            for item in batch:
                yield item
    finally:
        await batches.aclose()
