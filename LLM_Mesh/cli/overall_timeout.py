"""``--timeout``: one bound on the whole of a command that reads a registry it does not trust
with its time (``ledger verify``, ``ledger statement``, ``receipt verify``).

Each answer those commands read is bounded alone (its bytes, its time, 429s waited out at
most 30 times a page), but not their number: a registry answering page after page, each
just within its bound, or 429 after 429, held the command (a cron job, a CI check) as long
as it liked (found 2026-12-05 for ``ledger verify``, ``witness29``; for ``ledger
statement`` and ``receipt verify --ledger``, ``money30``). :func:`within` bounds one
awaitable (the command's whole work, one ``asyncio.run``); :class:`Deadline` the several
``asyncio.run`` of a synchronous command (``receipt verify``: the keys, then the request's
entries, then the proofs), each run within what is left of one ``--timeout``. Either way
the error is the same line: the command, its ``--timeout``, where it was reading, what was
left undone, and how to give more time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from typing import Annotated, Any, Protocol, TypeVar

import typer

from LLM_Mesh.cli.render import terminal_text
from LLM_Mesh.errors import MeshError

__all__ = ["TIMEOUT_S", "Deadline", "Runner", "TimeoutOpt", "timeout_option", "within"]

T = TypeVar("T")

# the whole of a command's reading of a registry. An hour: 1,000,000 entries took 17-67 s
# over HTTP on a shared 2-core box (docs/benchmarks.md, 2026-12-01), so some 50 million by
# CPU; on the wire a page of 10,000 entries at their largest fields is 13.8 MB, so an hour
# at 100 Mbit/s reads some 30 million such entries, 3 million at 10 Mbit/s (the smaller
# entries of a real log: more). A larger log or a slower link: more seconds, or 0
TIMEOUT_S = 3600.0

_HELP = (
    "seconds the whole check of a registry may take, then an error (0: no limit; a big "
    "log on a slow link may need more)"
)


def timeout_option(more: str = "") -> Any:
    """The ``--timeout`` option, its help the same for every command (``more`` added)."""
    return typer.Option("--timeout", min=0.0, help=_HELP + more)


TimeoutOpt = Annotated[float, timeout_option()]


async def within(
    work: Awaitable[T], limit_s: float | None, where: str, *, command: str = "ledger verify",
    timeout_s: float | None = None, undone: str = "nothing was remembered",
) -> T:  # fmt: skip
    """``work``'s result, or a ``MeshError`` once ``limit_s`` seconds have passed (None: no
    limit): the registry is not trusted with the verifier's time. The error names
    ``command``, its ``--timeout`` (``timeout_s``; by default ``limit_s``, which may be
    what is left of it), ``where`` it read and what was left ``undone``."""
    try:
        async with asyncio.timeout(limit_s) as cm:
            return await work
    except TimeoutError:
        if not cm.expired():
            raise
        said = limit_s if timeout_s is None else timeout_s
        raise MeshError(
            f"{command}: not done within --timeout {said:g} s: {terminal_text(where)} "
            f"answered too slowly (or asked to wait again and again); {undone}. "
            "A big ledger on a slow link: pass more seconds (--timeout 0: no limit)"
        ) from None


class Runner(Protocol):
    """What runs a coroutine to its end from synchronous code: ``asyncio.run``, or a
    :class:`Deadline`."""

    def __call__(self, work: Coroutine[Any, Any, T], /) -> T: ...


class Deadline:
    """One ``--timeout`` over several ``asyncio.run`` calls (a synchronous command's steps),
    its clock started when made (``timeout_s`` 0: no limit): called with a coroutine, it
    runs it :func:`within` what is left; :meth:`then` is the same clock reading ``where``
    with another step left ``undone``."""

    def __init__(
        self, command: str, timeout_s: float, where: str = "the registry",
        undone: str = "nothing was checked", *, end: float | None = None,
    ) -> None:  # fmt: skip
        self.command, self.timeout_s, self.where, self.undone = command, timeout_s, where, undone
        self.end = end if end is not None or not timeout_s else time.monotonic() + timeout_s

    def then(self, where: str, undone: str) -> Deadline:
        return Deadline(self.command, self.timeout_s, where, undone, end=self.end)

    def __call__(self, work: Coroutine[Any, Any, T], /) -> T:
        left = None if self.end is None else max(0.0, self.end - time.monotonic())
        bounded = within(
            work, left, self.where, command=self.command, timeout_s=self.timeout_s,
            undone=self.undone,
        )  # fmt: skip
        return asyncio.run(bounded)
