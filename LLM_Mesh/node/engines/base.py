"""The engine contract: what a node's HTTP layer asks of a model backend.

An :class:`Engine` lists the models it serves and streams a generation as
:class:`Delta` pieces. The last delta of a finished generation carries
``finish_reason`` and :class:`Usage`; a cancelled generation (the cancel flag
was set: the client went away) simply stops, possibly without that final delta.

Blocking inference never runs on the event loop: :func:`iterate_in_thread`
drives a blocking iterator in a worker thread and hands its items to the loop
through an :class:`asyncio.Queue` (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

from LLM_Mesh.core.schemas import HostedModel

CancelFlag = Union[asyncio.Event, threading.Event]
"""Anything with ``is_set()``; engines check it between tokens."""

DEFAULT_MAX_TOKENS = 256
"""Completion budget when a request names none (capped by the context left)."""

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
    """A piece of generated text; the last one has ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


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

    def model_ids(self) -> list[str]:
        return [m.id for m in self.models()]


_ITEM, _ERROR, _DONE = "item", "error", "done"


async def iterate_in_thread(
    make_iter: Callable[[threading.Event], Iterator[T]], cancel: CancelFlag
) -> AsyncIterator[T]:
    """Run a blocking iterator in a worker thread; yield its items on the loop.

    ``make_iter`` receives a ``threading.Event`` that is set once the consumer
    is gone or ``cancel`` is set; the worker also checks both after every item
    and stops iterating (closing the iterator) as soon as either is set.
    Exceptions raised in the worker are re-raised here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    gone = threading.Event()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody listens any more
            gone.set()

    def work() -> None:
        try:
            it = make_iter(gone)
            try:
                for item in it:
                    if gone.is_set() or cancel.is_set():
                        gone.set()
                        break
                    put(_ITEM, item)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            put(_ERROR, exc)
            return
        put(_DONE, None)

    worker = threading.Thread(target=work, name="llm-mesh-engine", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _ITEM:
                yield value
            elif kind == _ERROR:
                raise value
            else:
                return
    finally:
        gone.set()
