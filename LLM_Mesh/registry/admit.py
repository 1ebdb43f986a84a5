"""Stage 2, admit: whether a parsed request may go on to a node, and on what terms.

:class:`Admission` runs its :class:`AdmissionCheck` s in order on every request,
each with the :class:`~LLM_Mesh.registry.job.Job` and its
:class:`~LLM_Mesh.registry.job.Client` (address, ``Authorization``). A check answers:

- ``None``: admitted, next check;
- a ``Job``: admitted on these terms (e.g. with the API key's ``avoid_regions``): later
  checks and stages get this job instead;
- a ``(Job, Hold)``: both of these;
- a ``Response``: answer this instead; no node is called and later checks do not
  run (an answer replayed from an earlier run);
- a :class:`Hold`: admitted, and the check wants to know how the request ended
  (``release`` with the answer, ``abandon`` when it raised; a stream that opened:
  ``release(None)``, then the hold's ``stream_ended()``, if it has one, once the stream
  has ended, however: the idempotency cache holds a stream's id until then, found
  2026-12-03), then ``settled`` is awaited
  before the answer goes out (not when the request was cancelled): the idempotency
  cache keeps answers this way, and frees a key a 429/5xx leaves free in the store before
  the client has that answer (its retry on another replica finds it free), unless the
  request's payment was written (then the key stays held: a retry is never paid again);
  the price check voids a reservation nobody paid this way;
- or it raises a ``MeshError`` to refuse (401, 429, 402).

A request that does not go on (refused, raised, cancelled, replayed) is given back what
the checks took for it before any work: its token charge (``Client.used(0)``) and the
anonymous total's request (``Client.refused``).

The checks (:func:`default_checks`): authentication → rate limit → an anonymous
address's requests in flight (:class:`~LLM_Mesh.registry.access.InFlightBound`) → (a lone registry: an
anonymous request's own id gets a settlement key bound to its scope,
:class:`ScopeAnonymousIds`) → price (the
estimate reserved from the payer, else 402: :mod:`~LLM_Mesh.registry.charge`; when
settlement is on) → idempotency → anonymous last (:mod:`~LLM_Mesh.registry.access`). Whatever the answer, it carries the client's
``x-ratelimit-*`` headers (``Client.headers``) when a limit applies to it.

A check must be cheap on the hot path: an anonymous request without a limit or a
request id passes every check without a store query but the price check's one
reservation (a group-committed transaction on the settlement's own connection,
``registry/settle_db.py``); a keyed one also costs a hash and a dict look-up once its
key is in memory; a keyed request of OpenAI's SDK without an id of its own (its implicit
key, :meth:`IdempotencyCheck._sdk_attempt`) also a SHA-256 of its body and, on
PostgreSQL, two writes in the background (its key's claim and its end), none awaited (on
SQLite one, its end, batched: ``lone_idempotency.py``); a retry of it one claim, awaited,
as a request with its own id (on SQLite, for the window after a start, one read).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Protocol

from starlette.responses import Response, StreamingResponse

from LLM_Mesh.core.anonymous_share import anonymous_cap
from LLM_Mesh.core.sdk_retry import implicit_key, is_implicit
from LLM_Mesh.errors import DuplicateRequest, MeshError, SettlementUnavailable
from LLM_Mesh.registry.access import AnonymousLast, Authenticate, InFlightBound, RateLimit
from LLM_Mesh.registry.charge import Charge
from LLM_Mesh.registry.errors import error_response
from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.paid_ids import PaidIds
from LLM_Mesh.registry.redis_admit import SharedAdmission
from LLM_Mesh.registry.runtime import Runtime

__all__ = [
    "Admission",
    "AdmissionCheck",
    "Hold",
    "IdempotencyCheck",
    "ScopeAnonymousIds",
    "default_checks",
    "prompt_digest",
]

Handler = Callable[[Job, Client], Awaitable[Response]]

log = logging.getLogger(__name__)


class Hold(Protocol):
    """An admitted request's ticket: told how the request ended, exactly once."""

    def release(self, response: Response | None) -> None:
        """It ended with ``response`` (``None``: a stream that opened, whose answer cannot
        be kept; a stream refused before it opened passes its whole answer)."""

    def abandon(self) -> None:
        """It raised before it had an answer."""

    async def settled(self) -> None:
        """After ``release`` or ``abandon``, before the answer goes out: what must be in
        place when the client has it (bounded by the hold; never raises)."""


class AdmissionCheck(Protocol):
    async def __call__(
        self, job: Job, client: Client
    ) -> Response | Hold | Job | tuple[Job, Hold] | None:
        """``None``: admitted; a ``Job``: admitted on these terms; a ``Response``: answer it
        instead; a :class:`Hold`: admitted, tell the hold how it ended; both (a ``Job`` and
        a ``Hold``): on these terms, tell the hold. Raise a ``MeshError`` to refuse in
        OpenAI's error shape."""


class Admission:
    """The admission stage: its checks, in order (see the module docstring)."""

    __slots__ = ("checks",)

    def __init__(self, checks: Sequence[AdmissionCheck]) -> None:
        self.checks = tuple(checks)

    async def run(self, job: Job, client: Client, handler: Handler) -> Response:
        """Run the checks, then ``handler`` (the rest of the pipeline) if admitted."""
        holds: list[Hold] = []
        replay: Response | None = None
        try:
            for check in self.checks:
                verdict = await check(job, client)
                if verdict is None:
                    continue
                if isinstance(verdict, Job):
                    job = verdict
                elif isinstance(verdict, tuple):  # admitted on these terms, with a hold
                    job = verdict[0]
                    holds.append(verdict[1])
                elif isinstance(verdict, Response):
                    replay = verdict
                    break
                else:
                    holds.append(verdict)
        except BaseException as exc:
            _abandon(holds)
            client.used(0)
            client.refused()  # refused, failed or cancelled before any work: not counted
            await _settled(holds, exc)
            raise
        if replay is not None:
            _release(holds, replay)
            client.used(0)  # answered without a node: a token charge comes back
            client.refused()  # and the anonymous total's request
            await _settled(holds)
            return client.decorate(replay)
        client.admitted()
        if not holds and not client.headers:
            return await handler(job, client)
        if job.stream:
            try:
                resp = await handler(job, client)
            except BaseException as exc:
                _abandon(holds)
                await _settled(holds, exc)
                if not isinstance(exc, MeshError) or not client.headers:
                    raise
                return client.decorate(error_response(exc))
            # a stream refused before it opened is answered whole (a node's 4xx, or a 502
            # for its non-200 2xx/3xx): the holds get that answer, so a 429 or 5xx frees
            # the id as a non-stream's does; an open stream's answer cannot be kept
            _release(holds, None if isinstance(resp, StreamingResponse) else resp)
            if isinstance(resp, StreamingResponse):
                _keep_stream(resp, holds)
                _when_ended(resp, holds)
            await _settled(holds)
            return client.decorate(resp)
        result: Response | None = None
        try:
            try:
                result = await handler(job, client)
            except MeshError as exc:
                result = error_response(exc)
        except BaseException as exc:
            _release(holds, None)
            await _settled(holds, exc)
            raise
        _release(holds, result)
        await _settled(holds)
        return client.decorate(result)


def _release(holds: list[Hold], response: Response | None) -> None:
    for hold in reversed(holds):
        hold.release(response)


def _keep_stream(resp: StreamingResponse, holds: list[Hold]) -> None:
    """A hold that replays a completed stream (``keeps_stream``: the byte budget that all
    the streams kept at once share; a keyed SDK attempt's, ``_CacheHold``) has the stream
    keep its bytes (the relay's ``ProxyStream``)."""
    budgets = [b for b in (getattr(h, "keeps_stream", None) for h in holds) if b is not None]
    keep = getattr(resp, "keep_answer", None)
    if budgets and callable(keep):
        keep(budgets[0])


def _when_ended(resp: StreamingResponse, holds: list[Hold]) -> None:
    """The holds' ``stream_ended`` once ``resp`` has ended (``when_ended``: the relay's
    ``ProxyStream``; a stream that does not say when it ends: at once); first, to a hold
    that keeps it (``stream_answer``), the whole stream if it completed (``kept_answer``)."""
    ends = [f for f in (getattr(h, "stream_ended", None) for h in holds) if callable(f)]
    if not ends:
        return

    def ended() -> None:
        kept = getattr(resp, "kept_answer", None)
        answer = kept() if callable(kept) else None
        for h in holds if answer is not None else ():
            keep = getattr(h, "stream_answer", None)
            if callable(keep):
                keep(answer)
        for f in ends:
            f()

    when_ended = getattr(resp, "when_ended", None)
    if callable(when_ended):
        when_ended(ended)
    else:
        ended()


def _abandon(holds: list[Hold]) -> None:
    for hold in reversed(holds):
        hold.abandon()


async def _settled(holds: list[Hold], exc: BaseException | None = None) -> None:
    """Each hold's ``settled``, before the answer goes out; not when the request was
    cancelled or the process is stopping (``exc`` not an ``Exception``)."""
    if exc is not None and not isinstance(exc, Exception):
        return
    for hold in holds:
        await hold.settled()


class _CacheHold:
    __slots__ = ("cache", "client", "keeps_stream", "key")

    def __init__(self, cache: IdempotencyCache, key: str, client: Client) -> None:
        self.cache, self.key, self.client = cache, key, client
        # a keyed SDK attempt's stream is kept whole, within the cache's budget for all the
        # streams kept at once, for its retry's replay
        self.keeps_stream = cache.streams if is_implicit(key) else None

    def stream_answer(self, answer: Response) -> None:
        """The whole stream, completed (paid): kept for its retry (``keeps_stream``)."""
        self.cache.keep_stream(self.key, answer)

    def release(self, response: Response | None) -> None:
        # a request whose payment was (or may have been) written keeps its id, whatever its
        # end (cancelled while paying, a 5xx): a retry is never run and paid again. Until
        # 2026-12-03 a cancellation while the payment was written freed it, paid all the same
        payment = self.client.payment
        self.cache.finish(self.key, response, paid=payment is not None and payment.written)

    def abandon(self) -> None:
        self.cache.abandon(self.key)

    def stream_ended(self) -> None:
        self.cache.stream_ended(self.key)

    async def settled(self) -> None:
        await self.cache.settled(self.key)


def prompt_digest(model: str, prompt_text: str) -> str:
    """SHA-256 of a request's model and prompt (``Job.prompt_text``: its messages' texts):
    what an anonymous client's request id is bound to (:class:`IdempotencyCheck`)."""
    return hashlib.sha256(f"{model}\0{prompt_text}".encode(errors="replace")).hexdigest()


class IdempotencyCheck:
    """A client request id runs once per gateway (see :mod:`idempotency`; across replicas
    on one store: :mod:`shared_idempotency`), within
    its client's scope (API key id, else address): another client resending the same id
    runs its own request and is never handed this one's answer. An anonymous client's scope
    is its address, which many share (a NAT, a campus, an IPv6 /64, a proxy in front of the
    gateway), so its key also holds :func:`prompt_digest`: only a retry of the same prompt
    replays (or is refused 409; streamed or not, as before), never someone else's with a
    common id such as ``1`` (found 2026-12-04: handed the other client's whole answer for
    10 min). A keyed request without an id that carries OpenAI's SDK retry marker gets an
    implicit one (:meth:`_sdk_attempt`, ``core/sdk_retry.py``; found 2026-12-05: the SDK's
    retry of an answer lost on the way ran, and was paid, again)."""

    __slots__ = ("cache", "paid")

    def __init__(self, cache: IdempotencyCache, paid: PaidIds | None = None) -> None:
        self.cache = cache
        self.paid = paid  # a lone registry: ids its previous process was paid for

    async def __call__(self, job: Job, client: Client) -> Response | Hold | None:
        if job.client_id is None:
            return await self._sdk_attempt(job, client)
        key = f"{job.path} {client.scope} {job.client_id}"
        if client.key is None:  # an address is no one's own: bound to the request's bytes
            key += " " + prompt_digest(job.model, job.prompt_text)
        earlier = await self.cache.begin(key, job.stream)
        if earlier is not None:
            return earlier
        payment = client.payment
        if self.paid is not None and payment is not None:
            try:  # paid before a restart: never run and paid again (registry/paid_ids.py)
                refusal = await self.paid.refusal(job.client_id, job.settle_key, payment.payer)
            except BaseException:
                self.cache.abandon(key)
                raise
            if refusal is not None:
                self.cache.refuse(key, refusal)
                raise refusal
        return _CacheHold(self.cache, key, client)

    async def _sdk_attempt(self, job: Job, client: Client) -> Response | Hold | None:
        """A keyed request of OpenAI's SDK without an id of its own (``core/sdk_retry.py``):
        its first attempt (count 0) always runs and is held under the implicit key; a
        retry (count >= 1) of the same bytes within the window waits for it, replays its
        answer or is refused 409 as a repeated id is, else runs and is held. Never an
        anonymous one: an address is shared, and so would be its answers. A store that
        fails here runs the attempt without the key (as before this check), never fails it."""
        if job.sdk_retry is None or client.key is None or self.cache.retry_window_s <= 0:
            return None
        key = implicit_key(job.path, client.scope, job.body_digest)
        try:
            if job.sdk_retry == 0:
                fresh = await self.cache.begin_fresh(key, job.stream)
                return _CacheHold(self.cache, key, client) if fresh else None
            earlier = await self.cache.begin(key, job.stream)
        except DuplicateRequest as exc:  # its message names the key: say what it is instead
            raise DuplicateRequest(
                f"this request is your OpenAI SDK's retry (x-stainless-retry-count: "
                f"{job.sdk_retry}) of an identical request of this API key that ran, or runs "
                "now, and cannot be replayed (a stream still running, cut off or failed, an "
                "answer too large to keep, one paid without an answer, or one whose replica "
                "stopped): it is never run, nor paid, twice. Make the call again to run it anew",
                param="x-stainless-retry-count",
                **exc.extra,
            ) from None
        except MeshError:
            raise
        except Exception:
            log.warning("an SDK attempt's implicit key could not be claimed", exc_info=True)
            return None
        return earlier if earlier is not None else _CacheHold(self.cache, key, client)


class ScopeAnonymousIds:
    """On a lone registry, an anonymous request's own id gets a settlement key whose tag
    binds its scope in :class:`IdempotencyCheck` (address, prompt), before the price check
    writes it: so the lookup after a restart (``paid_ids.py``) finds the pool's row of that
    scope only, as the process's check would (found 2026-12-04: not looked up at all)."""

    __slots__ = ("paid",)

    def __init__(self, paid: PaidIds) -> None:
        self.paid = paid

    async def __call__(self, job: Job, client: Client) -> Job | None:
        if job.client_id is None or client.key is not None:
            return None
        digest = prompt_digest(job.model, job.prompt_text)
        try:
            scoped = await self.paid.scoped(job.settle_key, client.scope, digest)
        except Exception as exc:  # the ledger's key unreadable: as a reservation that failed
            raise SettlementUnavailable(
                "the request's settlement key could not be made (settlement database "
                "unavailable); nothing was run: try again",
                retry_after=1,
            ) from exc
        return replace(job, settle_key=scoped)


async def over_share(last: AnonymousLast, model: str, allowed: bool = False) -> bool:
    """``model``'s anonymous requests in flight are more than its share of the slots
    counted now, as with keyed demand (the stricter cap): after a node refused one of them
    (429, 503: full by its own word, its idle slots no longer counted) or failed it (a 500,
    a dropped connection, a timeout: what it had shown it serves no longer counted; since
    share35, ``anonymous_share.ASKS_THE_SHARE``), the request stops
    there instead of failing over into the slots kept for keyed requests (found 2026-12-06,
    attack33: a node declaring 2^31 slots and refusing what it is sent lent them to every
    anonymous request the share admitted, each then taking an honest node's kept slot).
    ``allowed``: the request may go to nodes that keep prompts. Counted: this process's,
    or with Redis every replica's (``SharedInFlight.count``, one round trip, asked only
    after such a refusal and only while this process's own count is within the cap; found
    2026-12-06, anon34: a flood spread over 3 replicas passed each one's own count)."""
    share = last.share
    if share is None:
        return False
    cap = anonymous_cap(last.slots(model, allowed), share)
    n = last.running.counts.get(model, 0)
    if n <= cap and last.shared is not None:  # Redis out: None, this process's decides
        n = max(n, await last.shared.count(model) or 0)
    return n > cap


def default_checks(rt: Runtime) -> list[AdmissionCheck]:
    """The gateway's admission checks, in the order they run (see the module docstring)."""
    public = rt.settings.anonymous_rpm is not None  # the anonymous bounds apply here
    in_flight = rt.settings.anonymous_in_flight
    # the share of a model's slots anonymous requests may hold (core/anonymous_share.py)
    share = rt.settings.anonymous_share if public and rt.settings.anonymous_share < 1 else None
    last = AnonymousLast(rt.routing, rt.clock, share, rt.shared_share)  # Redis: every replica's
    rt.over_share = None if share is None else partial(over_share, last)
    bound = (
        InFlightBound(in_flight, rt.shared_in_flight) if in_flight is not None and public else None
    )
    shared = rt.shared_limits
    # with Redis, an anonymous request's takes run with its rate limit: one round trip
    together = None
    if shared is not None:
        counts = bound.shared if bound is not None else None
        together = SharedAdmission(shared, counts, last.shared, last.cap_ahead)
    checks: list[AdmissionCheck] = [
        Authenticate(rt.keys, rt.limiter, rt.clock),
        RateLimit(
            rt.limiter,
            rt.settings.anonymous_rpm,
            rt.clock,
            shared,
            anonymous_total_rpm=rt.settings.anonymous_total_rpm,
            admission=together,
        ),
    ]
    if bound is not None:
        # every replica's counts (Redis, registry/redis_inflight.py); None: this process's
        checks.append(bound)
    if rt.settlement is not None:  # the estimate reserved from the payer, else 402
        if rt.paid_ids is not None:  # whose key it is, for the lookup after a restart
            checks.append(ScopeAnonymousIds(rt.paid_ids))
        checks.append(Charge(rt.settlement))
    if rt.metrics is not None:  # its wait's push-outs and refusals counted
        rt.metrics.wait_places(last.places, "admit")
    checks += [IdempotencyCheck(rt.idempotency, rt.paid_ids), last]
    return checks
