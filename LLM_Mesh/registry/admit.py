"""Stage 2, admit: whether a parsed request may go on to a node, and on what terms.

:class:`Admission` runs its :class:`AdmissionCheck` s in order on every request.
A check answers one of three things:

- ``None``: admitted, next check;
- a ``Response``: answer this instead; no node is called and later checks do not
  run (a refusal such as 401/429/402, or an answer replayed from an earlier run);
- a :class:`Hold`: admitted, and the check wants to know how the request ended
  (``release`` with the answer, ``abandon`` when it raised): the idempotency
  cache keeps answers this way; a price check will settle this way.

Today's one check is :class:`IdempotencyCheck` (a client ``Idempotency-Key`` /
``X-Request-Id`` runs at most once, :mod:`~LLM_Mesh.registry.idempotency`). This
is where authentication, rate limits and the price estimate go, as more checks:
they are added to the list in :func:`default_checks`, no other stage changes.

A check must be cheap on the hot path: the idempotency check returns at once when
the request carries no key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from starlette.responses import Response

from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.errors import error_response
from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["Admission", "AdmissionCheck", "Hold", "IdempotencyCheck", "default_checks"]

Handler = Callable[[Job], Awaitable[Response]]


class Hold(Protocol):
    """An admitted request's ticket: told how the request ended, exactly once."""

    def release(self, response: Response | None) -> None:
        """It ended with ``response`` (``None``: a stream, whose answer cannot be kept)."""

    def abandon(self) -> None:
        """It raised before it had an answer."""


class AdmissionCheck(Protocol):
    async def __call__(self, job: Job) -> Response | Hold | None:
        """``None``: admitted; a ``Response``: answer it instead; a :class:`Hold`: admitted,
        tell the hold how it ended. Raise a ``MeshError`` to refuse in OpenAI's error shape."""


class Admission:
    """The admission stage: its checks, in order (see the module docstring)."""

    __slots__ = ("checks",)

    def __init__(self, checks: Sequence[AdmissionCheck]) -> None:
        self.checks = tuple(checks)

    async def run(self, job: Job, handler: Handler) -> Response:
        """Run the checks, then ``handler`` (the rest of the pipeline) if admitted."""
        holds: list[Hold] = []
        try:
            for check in self.checks:
                verdict = await check(job)
                if verdict is None:
                    continue
                if isinstance(verdict, Response):
                    _release(holds, verdict)
                    return verdict
                holds.append(verdict)
        except BaseException:
            _abandon(holds)
            raise
        if not holds:
            return await handler(job)
        if job.stream:
            try:
                resp = await handler(job)
            except BaseException:
                _abandon(holds)
                raise
            _release(holds, None)
            return resp
        result: Response | None = None
        try:
            result = await handler(job)
        except MeshError as exc:
            result = error_response(exc)
        finally:
            _release(holds, result)
        return result


def _release(holds: list[Hold], response: Response | None) -> None:
    for hold in reversed(holds):
        hold.release(response)


def _abandon(holds: list[Hold]) -> None:
    for hold in reversed(holds):
        hold.abandon()


class _CacheHold:
    __slots__ = ("cache", "key")

    def __init__(self, cache: IdempotencyCache, key: str) -> None:
        self.cache, self.key = cache, key

    def release(self, response: Response | None) -> None:
        self.cache.finish(self.key, response)

    def abandon(self) -> None:
        self.cache.abandon(self.key)


class IdempotencyCheck:
    """A client request id runs once per gateway process (see :mod:`idempotency`)."""

    __slots__ = ("cache",)

    def __init__(self, cache: IdempotencyCache) -> None:
        self.cache = cache

    async def __call__(self, job: Job) -> Response | Hold | None:
        if job.client_id is None:
            return None
        key = f"{job.path} {job.client_id}"
        earlier = await self.cache.begin(key, job.stream)
        if earlier is not None:
            return earlier
        return _CacheHold(self.cache, key)


def default_checks(rt: Runtime) -> list[AdmissionCheck]:
    """The gateway's admission checks, in the order they run."""
    return [IdempotencyCheck(rt.idempotency)]
