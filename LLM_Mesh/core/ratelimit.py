"""Rate limits as pure arithmetic: token buckets, limit decisions, the headers clients read.

Every limit is a :class:`Bucket` (capacity = the per-minute limit, refilled evenly
over a minute), so a client may burst up to its whole minute and then goes at the
steady rate. A request takes one *request* token and, where a tokens-per-minute
limit applies, its *token estimate* (the prompt's usual count + ``max_tokens``,
:func:`estimate_tokens`) from the
token bucket; when its real usage is known the estimate is corrected
(:meth:`RateLimiter.settle`: unused tokens come back, extra ones are owed, so the
bucket may go below zero and the next request waits longer).

:class:`RateLimiter` keeps one pair of buckets per *scope* (an API key id, or
``ip:<address>`` for anonymous clients), at most ``max_scopes`` of them, least
recently used first out (a bucket dropped is one that refilled the longest ago).
Besides them it keeps a few :class:`Total` s (:meth:`RateLimiter.total`): one bucket for
a whole class of clients together (every anonymous address's ``/v1`` requests; every
reader's public ledger rows), so that a client holding many addresses (an IPv6 /48 holds
65,536 /64s, each a scope of its own) still gets no more than the total, never evicted;
and a few :class:`IdTries` (:meth:`RateLimiter.per_id`): failures counted per node id,
kept apart from the scopes (beatrot40, below).
Nothing here does I/O or reads a clock: ``now`` is passed in (monotonic seconds).

:func:`limit_headers` gives what OpenAI's API sends and its clients read:
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (time until the bucket is full again, as ``"1s"``,
``"6m0s"``, ``"20ms"``) and the same three ``-tokens`` headers when a token limit
applies.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network

from LLM_Mesh.core.pricing import usual_prompt_tokens

__all__ = [
    "DEFAULT_MAX_IDS",
    "Bucket",
    "Decision",
    "IdTries",
    "Limits",
    "RateLimiter",
    "Total",
    "address_scope",
    "duration",
    "estimate_tokens",
    "limit_headers",
]

DEFAULT_MAX_SCOPES = 100_000


def estimate_tokens(prompt_text: str, max_tokens: int, messages: int = 0) -> int:
    """What a request is charged before its answer: the usual count of its prompt plus
    ``max_tokens``. The usual count is the one rule of the mesh
    (:func:`~LLM_Mesh.core.pricing.usual_prompt_tokens`: ``ceil(characters / 3)`` + 5 a
    chat message, ``messages``, + 16), the count a payer is charged for a prompt no node
    counted; not the price estimate's upper bound (UTF-8 bytes, ~3.6x a prose prompt's
    tokens), which would refuse requests whose real usage fits the tpm. Settled by the real
    usage after (:meth:`RateLimiter.settle`). Until 2026-12-03 the tpm had its own rule,
    ``ceil(characters / 4)`` and nothing for the template: every request is charged more
    before now (16 + 5 a message + a twelfth of its characters), never less."""
    return usual_prompt_tokens(prompt_text, messages) + max(0, max_tokens)


@dataclass(frozen=True)
class Limits:
    """Per-minute limits of one scope; ``None``: no such limit."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None for no limit)")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None


class Bucket:
    """A token bucket holding up to ``capacity``, refilled at ``capacity`` per minute."""

    __slots__ = ("at", "capacity", "level_at")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.level_at = float(capacity)  # the level at time ``at`` (may be negative: owed)
        self.at = now

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.capacity / 60.0

    def level(self, now: float) -> float:
        return min(self.capacity, self.level_at + max(0.0, now - self.at) * self.rate)

    def wait(self, now: float, n: float) -> float:
        """Seconds until ``n`` tokens are there (0: now); ``inf`` when ``n`` exceeds capacity."""
        if n > self.capacity:
            return math.inf
        short = n - self.level(now)
        return 0.0 if short <= 0 else short / self.rate

    def take(self, now: float, n: float) -> None:
        """Remove ``n`` tokens (the level may go below zero: a debt repaid by waiting).
        A ``now`` before the bucket's last change (a charge settled with the time its
        request began) refills nothing and leaves the bucket's clock where it is: moved
        back, the refill since would be counted twice."""
        self.level_at = self.level(now) - n
        self.at = max(self.at, now)

    def give(self, now: float, n: float) -> None:
        """Return ``n`` tokens (never above capacity; ``now`` as in :meth:`take`)."""
        self.level_at = min(self.capacity, self.level(now) + n)
        self.at = max(self.at, now)

    def reset_s(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, self.capacity - self.level(now)) / self.rate


@dataclass(frozen=True)
class Decision:
    """A rate-limit verdict: allowed, or which limit refused and for how long."""

    allowed: bool
    headers: tuple[tuple[str, str], ...] = ()
    retry_after_s: float = 0.0
    exceeded: str | None = None  # "requests" | "tokens"
    limit: int = 0  # the exceeded limit (per minute)
    requested: int = 0  # what the request needed of it
    charged: int = 0  # tokens taken from the token bucket (to settle later)
    # charged in the replicas' shared buckets (Redis), not this process's: settled there only
    shared: bool = False


def duration(seconds: float) -> str:
    """OpenAI's reset format: ``"20ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def limit_headers(
    limits: Limits, requests: Bucket | None, tokens: Bucket | None, now: float
) -> tuple[tuple[str, str], ...]:
    """The ``x-ratelimit-*`` headers for a scope's buckets as they are at ``now``."""
    out: list[tuple[str, str]] = []
    for kind, limit, bucket in (("requests", limits.rpm, requests), ("tokens", limits.tpm, tokens)):
        if limit is None or bucket is None:
            continue
        out.append((f"x-ratelimit-limit-{kind}", str(limit)))
        out.append((f"x-ratelimit-remaining-{kind}", str(max(0, math.floor(bucket.level(now))))))
        out.append((f"x-ratelimit-reset-{kind}", duration(bucket.reset_s(now))))
    return tuple(out)


class Total:
    """What a whole class of clients together may take from this process a minute (``per_min``,
    refilled evenly, first come): checked before a client's own scope is charged, taken
    once it is (:meth:`take`), settled like a token charge. A charge is never more than
    the bucket holds (a read larger than the whole total is charged the total)."""

    __slots__ = ("bucket", "per_min")

    def __init__(self, per_min: int, now: float) -> None:
        if per_min < 1:
            raise ValueError("per_min must be >= 1")
        self.per_min = per_min
        self.bucket = Bucket(per_min, now)

    def part(self, n: int) -> int:
        """What a charge of ``n`` takes: at least 0, at most the whole total."""
        return min(max(0, n), self.per_min)

    def wait(self, now: float, n: int = 1) -> float:
        """Seconds until ``n`` (as :meth:`part`) is there; 0: now."""
        return self.bucket.wait(now, self.part(n))

    def take(self, now: float, n: int = 1) -> int:
        """Take ``n`` (as :meth:`part`) and say how much was taken (to settle later)."""
        charged = self.part(n)
        self.bucket.take(now, charged)
        return charged

    def give(self, now: float, n: int = 1) -> None:
        """Give back ``n`` taken (the client was refused by its own limit after all)."""
        self.bucket.give(now, self.part(n))

    def settle(self, now: float, charged: int, used: int) -> None:
        """A charge of ``charged`` really used ``used`` (as :meth:`part`): give back or take."""
        used = self.part(used)
        if used < charged:
            self.bucket.give(now, charged - used)
        elif used > charged:
            self.bucket.take(now, used - charged)


# ids with a count in the last minute an :class:`IdTries` keeps at most. Its callers' totals
# bound how many ids can be counted a minute (``admin.WRONG_REREGISTRATIONS_TOTAL_PER_MIN``:
# 300), well below; the forged beats counted at nodes' homes, by the nodes known here
DEFAULT_MAX_IDS = 10_000


class IdTries:
    """Failures a minute per node id, kept only while they count, at most ``max_ids``.

    A few counts are kept per node id rather than per client address (``registry/admin.py``:
    refused re-registrations of a key this process holds, forged heartbeats and goodbyes
    verified at a node's home). Anyone can name an id, so such counts must not grow with
    every id ever counted, nor be pushed out by other clients' entries, which would start
    a full count over (found 2026-12-07, beatrot40: they were scopes of the
    :class:`RateLimiter`, beside every client address's, least recently used first out).

    One :class:`Bucket` of ``per_min`` an id, ordered by when it was last counted. Each
    count drops, from the oldest end, the entries whose bucket is full again (their minute
    has passed: they count nothing, so nothing is lost), so what is kept is about the ids
    counted in the last minute; should more than ``max_ids`` be counted within one minute,
    the one counted the longest ago goes. An id counted again moves to the newest end: an
    id under attack keeps its count. Each entry is dropped once (amortised O(1) a count).

    An entry may also keep the highest sequence number counted for its id (:meth:`count`'s
    ``seq``, :meth:`seq`: ``registry/valid_rates.py`` counts a signed message once), dropped
    with the entry.
    """

    __slots__ = ("_at", "_seq", "max_ids", "per_min")

    def __init__(self, per_min: int, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if per_min < 1 or max_ids < 1:
            raise ValueError("per_min and max_ids must be >= 1")
        self.per_min = per_min
        self.max_ids = max_ids
        self._at: OrderedDict[str, Bucket] = OrderedDict()
        self._seq: dict[str, int] = {}

    def wait(self, node_id: str, now: float) -> float:
        """Seconds before ``node_id`` may fail once more (0: now); nothing counted."""
        bucket = self._at.get(node_id)
        return 0.0 if bucket is None else bucket.wait(now, 1)

    def seq(self, node_id: str) -> int | None:
        """The highest ``seq`` counted for ``node_id`` while its entry is kept (else None)."""
        return self._seq.get(node_id)

    def unseq(self, node_id: str, seq: int) -> None:
        """Forget ``seq`` as ``node_id``'s highest counted, if it still is (its message was
        refused before its sequence number was taken)."""
        if self._seq.get(node_id) == seq:
            del self._seq[node_id]

    def count(self, node_id: str, now: float, seq: int | None = None) -> None:
        """Count one failure of ``node_id`` (its caller asked :meth:`wait` first); with
        ``seq``, the entry keeps it when it is the highest counted (:meth:`seq`)."""
        at = self._at
        bucket = at.get(node_id)
        if bucket is None:
            bucket = at[node_id] = Bucket(self.per_min, now)
        else:
            at.move_to_end(node_id)
        bucket.take(now, 1)
        if seq is not None and seq > self._seq.get(node_id, -1):
            self._seq[node_id] = seq
        while at:
            oldest = next(iter(at.values()))
            if len(at) <= self.max_ids and oldest.level(now) < oldest.capacity:
                break  # it still counts (and the rest were counted since, within its minute)
            self._seq.pop(at.popitem(last=False)[0], None)

    def give(self, node_id: str, now: float) -> None:
        """Give back one :meth:`count` taken before the outcome was known (it succeeded);
        nothing when ``node_id``'s entry was dropped since."""
        bucket = self._at.get(node_id)
        if bucket is not None:
            bucket.give(now, 1)

    def __len__(self) -> int:
        return len(self._at)


class _Scope:
    __slots__ = ("limits", "requests", "tokens")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.requests = None if limits.rpm is None else Bucket(limits.rpm, now)
        self.tokens = None if limits.tpm is None else Bucket(limits.tpm, now)


class RateLimiter:
    """Buckets per scope (see the module docstring); one per gateway process."""

    __slots__ = ("_per_id", "_scopes", "_totals", "max_scopes")

    def __init__(self, max_scopes: int = DEFAULT_MAX_SCOPES) -> None:
        if max_scopes < 1:
            raise ValueError("max_scopes must be >= 1")
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._totals: dict[str, Total] = {}
        self._per_id: dict[str, IdTries] = {}

    def per_id(self, name: str, per_min: int) -> IdTries:
        """The process's :class:`IdTries` called ``name`` (a fresh one when ``per_min``
        changed); kept apart from the scopes: no client's scope pushes an id's count out."""
        t = self._per_id.get(name)
        if t is None or t.per_min != per_min:
            t = self._per_id[name] = IdTries(per_min)
        return t

    def total(self, name: str, per_min: int, now: float) -> Total:
        """The process's :class:`Total` called ``name`` (a fresh one when ``per_min`` changed);
        kept apart from the scopes: never evicted by them."""
        t = self._totals.get(name)
        if t is None or t.per_min != per_min:
            t = self._totals[name] = Total(per_min, now)
        return t

    def __len__(self) -> int:
        return len(self._scopes)

    def _scope(self, scope: str, limits: Limits, now: float) -> _Scope:
        s = self._scopes.get(scope)
        if s is None or s.limits != limits:  # new, or its limits changed: fresh buckets
            s = self._scopes[scope] = _Scope(limits, now)
            if len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(scope)
        return s

    def check(self, scope: str, limits: Limits, now: float, tokens: int = 0) -> Decision:
        """Take one request (and ``tokens``, where a token limit applies) or refuse."""
        if limits.unlimited:
            return Decision(True)
        s = self._scope(scope, limits, now)
        if s.requests is not None and limits.rpm is not None:
            wait = s.requests.wait(now, 1)
            if wait > 0:
                return self._refused(s, now, wait, "requests", limits.rpm, 1)
        charge = 0
        if s.tokens is not None and limits.tpm is not None:
            charge = max(0, tokens)
            wait = s.tokens.wait(now, charge)
            if wait > 0:
                return self._refused(s, now, wait, "tokens", limits.tpm, charge)
            s.tokens.take(now, charge)
        if s.requests is not None:
            s.requests.take(now, 1)
        return Decision(True, limit_headers(limits, s.requests, s.tokens, now), charged=charge)

    def wait(self, scope: str, limits: Limits, now: float) -> float:
        """Seconds before one more request of ``scope`` would be taken (0: now), nothing
        taken: for a caller that charges only the requests that fail (wrong credentials)."""
        if limits.rpm is None:
            return 0.0
        s = self._scopes.get(scope)
        if s is None or s.limits != limits or s.requests is None:
            return 0.0
        return s.requests.wait(now, 1)

    def give(self, scope: str, limits: Limits, now: float) -> None:
        """Give back one request :meth:`check` took (a try counted as it began that was
        not refused after all: never above the limit)."""
        s = self._scopes.get(scope)
        if s is not None and s.limits == limits and s.requests is not None:
            s.requests.give(now, 1)

    def _refused(
        self, s: _Scope, now: float, wait: float, kind: str, limit: int, requested: int
    ) -> Decision:
        return Decision(
            False, limit_headers(s.limits, s.requests, s.tokens, now), retry_after_s=wait,
            exceeded=kind, limit=limit, requested=requested,
        )  # fmt: skip

    def settle(self, scope: str, limits: Limits, now: float, charged: int, used: int) -> None:
        """A request charged ``charged`` tokens used ``used``: give back or take the difference."""
        s = self._scopes.get(scope)
        if s is None or s.limits != limits or s.tokens is None or used == charged:
            return
        if used < charged:
            s.tokens.give(now, charged - used)
        else:
            s.tokens.take(now, used - charged)

    def headers(self, scope: str, limits: Limits, now: float) -> tuple[tuple[str, str], ...]:
        """The scope's ``x-ratelimit-*`` headers now (none for a scope never seen)."""
        s = self._scopes.get(scope)
        if s is None or s.limits != limits:
            return ()
        return limit_headers(limits, s.requests, s.tokens, now)


@functools.lru_cache(maxsize=4096)
def address_scope(address: str) -> str:
    """The address an anonymous client's limits are kept under: an IPv4 address as is, an
    IPv4-mapped IPv6 one as its IPv4 address, ``::1`` as is, any other IPv6 address as its
    /64 (what one host or household is given: one new address per request must not be a
    new bucket); anything else (a test client's name) as is. Remembered for the last 4,096 addresses
    (a pure function of its text; every request makes a ``Client``: ``ipaddress`` parses
    in Python, a few µs a call)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip.is_loopback:  # ``::1`` alone: its /64 holds non-loopback bogons (attack34)
            return str(ip)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)
