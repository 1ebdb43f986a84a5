"""Who may use the gateway, how much, and who goes first: the admit stage's client checks.

Run by :class:`~LLM_Mesh.registry.admit.Admission` in this order, each before any node
is called:

1. :class:`Authenticate`: no ``Authorization`` header (or ``Bearer anonymous``, or an
   empty bearer token) is an **anonymous** client, known by its address; ``Bearer <key>``
   must be a live API key of the store (:class:`~LLM_Mesh.registry.api_keys.KeyCache`,
   in memory after the first use): an unknown, malformed or revoked key is 401
   ``invalid_api_key``, never served as anonymous. A key's ``avoid_regions`` and strict
   region mode are added to the request's. Store look-ups for keys not in memory are
   limited per address (:data:`LOOKUPS_PER_MIN`), so guessing keys cannot flood the store.
2. :class:`RateLimit`: the key's ``rpm``/``tpm`` (tokens: prompt estimate + ``max_tokens``
   taken now, without ``max_tokens`` the rest of the context up to the whole ``tpm``,
   corrected by the real usage when the answer is known), or per address
   ``Settings.anonymous_rpm`` for anonymous clients (:mod:`LLM_Mesh.core.ratelimit`),
   and, for all anonymous clients together, ``Settings.anonymous_total_rpm`` a minute in
   this process (``LLM_MESH_ANONYMOUS_TOTAL_RPM``, 6,000; applies where ``anonymous_rpm``
   does): a client holding many addresses (an IPv6 /48 is 65,536 /64s, each its own
   bucket) gets no more than that total; keyed clients never count against it.
   Over a limit: 429 ``rate_limit_exceeded`` with ``Retry-After`` and the
   ``x-ratelimit-*`` headers, which every answer to a limited client carries (the total
   sends ``Retry-After`` alone). The total is this process's, also with Redis: it bounds
   the work one replica does for anonymous clients (each replica has its own CPU; a
   saturated node serves keyed requests first, check 4), with no Redis round trip. It
   counts requests sent on only: one its own limit or a later check (price, anonymous
   last) refuses, one whose answer is replayed, one that fails or is cancelled (the client
   left) in the admit stage gives its request back (``Client.on_refusal``; found
   2026-12-03: kept taken). With Redis out the replica's own buckets decide
   (``RedisLimiter``), and a request they admit counts as any other.
2b. :class:`~LLM_Mesh.registry.access_anonymous.InFlightBound`: an anonymous address's
   requests in flight (``registry/access_anonymous.py``, its docstring).
3. (the idempotency check, scoped to the client, see :mod:`~LLM_Mesh.registry.admit`)
4. :class:`~LLM_Mesh.registry.access_anonymous.AnonymousLast`: keyed requests before
   anonymous ones on a saturated model, and a share of its slots kept for them
   (``registry/access_anonymous.py``, its docstring; split out of this module at its
   600-line bound, hygiene44). Both are named here too, as before.

The price check (:mod:`~LLM_Mesh.registry.charge`) runs between 2 and 3.
The key cache lives in this process; the buckets too, unless the gateway has a Redis URL
(``Settings.redis_url``): then every replica shares them (:mod:`~LLM_Mesh.registry.redis_limits`),
and an anonymous request's Redis takes of 2b and 4 run with check 2's, one round trip
(:mod:`~LLM_Mesh.registry.redis_admit`; 2b and 4 claim them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from LLM_Mesh.core.client_retry import NO_KEY_HINT
from LLM_Mesh.core.pricing import completion_bound
from LLM_Mesh.core.ratelimit import Limits, RateLimiter, Total, estimate_tokens
from LLM_Mesh.errors import InvalidApiKey, RateLimited
from LLM_Mesh.registry.access_anonymous import AnonymousLast, InFlightBound
from LLM_Mesh.registry.api_keys import KeyCache
from LLM_Mesh.registry.extensions import with_key_options, with_key_regions
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.ports import ApiKeyRecord
from LLM_Mesh.registry.redis_admit import SharedAdmission
from LLM_Mesh.registry.redis_limits import RedisLimiter

__all__ = [
    "ANONYMOUS_TOKEN",
    "LOOKUPS_PER_MIN",
    "AnonymousLast",
    "Authenticate",
    "InFlightBound",
    "RateLimit",
]

ANONYMOUS_TOKEN = "anonymous"  # ``Bearer anonymous``: no key, on purpose (OpenAI SDKs need one)
LOOKUPS_PER_MIN = 60  # store look-ups of keys not in memory, per client address


def _mask(token: str) -> str:
    return token[:4] + "..." + token[-4:] if len(token) > 12 else "..."


class Authenticate:
    """Check 1: the client's API key, or anonymous (see the module docstring)."""

    __slots__ = ("clock", "keys", "limiter", "lookups")

    def __init__(self, keys: KeyCache, limiter: RateLimiter, clock: Callable[[], float]) -> None:
        self.keys = keys
        self.limiter = limiter
        self.clock = clock
        self.lookups = Limits(rpm=LOOKUPS_PER_MIN)

    async def __call__(self, job: Job, client: Client) -> Job | None:
        rec = await self.identify(client)
        if rec is None:
            return None
        ext = job.ext
        if rec.avoid_regions or rec.strict_regions:
            ext = with_key_regions(ext, frozenset(rec.avoid_regions), rec.strict_regions)
        ext = with_key_options(ext, rec.trusted_only, rec.allow_prompt_keeping)
        if ext.wait_s > 0:  # its wait takes places of its key's share (core/slot_wait.py)
            ext = replace(ext, waiter=rec.key_id)
        return replace(job, ext=ext) if ext is not job.ext else None

    async def identify(self, client: Client) -> ApiKeyRecord | None:
        """The client's live API key (also set as ``client.key``), ``None`` when anonymous;
        401 for a wrong or revoked one, 429 for too many look-ups (``GET /v1/balance`` too)."""
        header = client.authorization
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            raise InvalidApiKey(
                f"the Authorization header must be 'Bearer <API key>'; {NO_KEY_HINT}"
            )
        if not token or token == ANONYMOUS_TOKEN:
            return None
        hit, rec = self.keys.cached(token)
        if not hit:
            d = self.limiter.check(f"lookup:{client.address}", self.lookups, self.clock())
            if not d.allowed:
                raise RateLimited(
                    "too many API keys tried from this address; wait before trying another",
                    retry_after=max(1, math.ceil(d.retry_after_s)),
                )
            rec = await self.keys.lookup(token)
        if rec is None:
            raise InvalidApiKey(f"incorrect API key provided: {_mask(token)}; {NO_KEY_HINT}")
        if rec.revoked_at is not None:
            raise InvalidApiKey(f"the API key {rec.key_id} was revoked: ask for a new key from the "
                                f"registry's admin (`llm-mesh registry keys create`), or {NO_KEY_HINT}")  # fmt: skip
        client.key = rec
        return rec


class RateLimit:
    """Check 2: the client's requests and tokens per minute (see the module docstring)."""

    __slots__ = ("admission", "anonymous", "anonymous_total", "clock", "limiter", "shared")

    def __init__(
        self,
        limiter: RateLimiter,
        anonymous_rpm: int | None,
        clock: Callable[[], float],
        shared: RedisLimiter | None = None,
        anonymous_total_rpm: int | None = None,
        admission: SharedAdmission | None = None,
    ) -> None:
        self.limiter = limiter
        # an anonymous request's Redis takes with its check, one round trip (redis_admit.py)
        self.admission = admission if shared is not None else None
        self.clock = clock
        self.anonymous = Limits(rpm=anonymous_rpm)
        self.anonymous_total = anonymous_total_rpm  # every address together; None: no total
        self.shared = shared  # every replica's buckets (Redis); None: this process's

    def _total(self) -> Total | None:
        """The anonymous total's bucket, one request taken from it, or 429 when it is empty."""
        per_min = self.anonymous_total
        if per_min is None:
            return None
        now = self.clock()
        total = self.limiter.total("anonymous", per_min, now)
        wait = total.wait(now)
        if wait > 0:
            wait_s = max(1, math.ceil(wait))
            raise RateLimited(
                f"this gateway's requests without an API key, from every address together, "
                f"reached their limit of {per_min} per minute; try again in {wait_s} s, or "
                "send an API key",
                retry_after=wait_s, limit=per_min, requested=1,
            )  # fmt: skip
        total.take(now)
        return total

    async def __call__(self, job: Job, client: Client) -> None:
        key = client.key
        if key is None:
            limits = self.anonymous
        elif key.rpm is None and key.tpm is None:  # a key without limits: no Limits made
            return None
        else:
            limits = Limits(rpm=key.rpm, tpm=key.tpm)
        if limits.unlimited:
            return None
        total = self._total() if key is None else None  # taken now, given back if refused
        scope = client.scope
        try:
            tokens = _token_charge(job, limits.tpm) if limits.tpm else 0
            shared = self.shared
            if shared is None:
                d = self.limiter.check(scope, limits, self.clock(), tokens)
            elif key is None and self.admission is not None:  # and its takes ahead
                d = await self.admission.check(job, client, limits, self.clock(), tokens)
            else:  # Redis out: its own buckets decide (RedisLimiter); cancelled: raises
                d = await shared.check(scope, limits, self.clock(), tokens)
        except BaseException:
            if total is not None:  # the client left (or the check failed): no work done
                total.give(self.clock(), 1)
            raise
        if total is not None:
            if not d.allowed:  # refused by its own limit: not counted in the total
                total.give(self.clock(), 1)
            else:  # a later check refuses it, or an answer is replayed: not counted either
                client.on_refusal(lambda: total.give(self.clock(), 1))
        if not d.allowed:
            who = (
                f"API key {key.key_id}"
                if key is not None
                else "anonymous requests from this address"
            )
            if math.isinf(d.retry_after_s):
                raise RateLimited(
                    f"this request needs about {d.requested} tokens (prompt estimate + max_tokens), "
                    f"more than the {d.limit} tokens per minute of {who}; lower max_tokens",
                    retry_after=60, headers=d.headers, limit=d.limit, requested=d.requested,
                )  # fmt: skip
            wait = max(1, math.ceil(d.retry_after_s))
            raise RateLimited(
                f"rate limit reached for {d.exceeded} of {who}: {d.limit} per minute; "
                f"try again in {wait} s",
                retry_after=wait, headers=d.headers, limit=d.limit, requested=d.requested,
            )  # fmt: skip
        client.headers = d.headers
        if d.charged:
            # settled where it was charged: Redis, or this process's buckets (also with a
            # Redis URL, for a check made while Redis was out)
            settler = shared if shared is not None and d.shared else self.limiter
            clock, charged = self.clock, d.charged
            client.on_usage(lambda used: settler.settle(scope, limits, clock(), charged, used))
        return None


def _token_charge(job: Job, tpm: int) -> int:
    """What a request takes from a token bucket of ``tpm`` before it runs: its prompt
    estimate (its usual count, ``ratelimit.estimate_tokens``: ``pricing.usual_prompt_tokens``,
    the count a payer is charged for a prompt no node counted; not the price estimate's
    upper bound: the charge is settled by the real usage, and a bound of up to 4× a prose
    prompt's tokens would refuse requests whose real usage fits the tpm) and ``max_tokens``
    for each of ``n`` choices; without ``max_tokens`` each answer may run to the end of the
    model's context, so the charge is that, up to the whole ``tpm`` (given back when the
    real usage is known): charged its prompt only, any number of such requests ran at once."""
    choices = max(1, job.choices)  # n: each choice may use max_tokens (the usage sums them)
    need = estimate_tokens(job.prompt_text, job.max_tokens * choices, job.messages)
    if job.max_tokens:
        return need
    rest = completion_bound(need, 0, job.context or 1) * choices
    return max(need, min(tpm, need + rest))
