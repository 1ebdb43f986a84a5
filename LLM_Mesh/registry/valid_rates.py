"""Bounds on what a VALID credential can make the registry do (found 2026-12-07, attack44).

The counts in ``registry/admin.py`` bound the credentials that fail (forged signatures,
unknown tokens). Three kinds of request with a credential that holds had no bound:

- a node's own heartbeats (and goodbyes): each costs an Ed25519 verify (~0.7 ms), a
  sequence-number write and the table's work, and a node may send as many as it likes;
- a node's own registrations (found 2026-12-07, limits45): each a verify, the operator
  token's read, the key's claim, the address check and the node's row written;
- ``GET /v1/earnings`` (and the dashboard's operator view, which reads the same) with an
  operator's token: each a few indexed reads of the ledger's earnings.

Each is counted per id in an :class:`~LLM_Mesh.core.ratelimit.IdTries` of the process's
limiter (``RateLimiter.per_id``: apart from the clients' scopes, kept only while they
count, at most ``DEFAULT_MAX_IDS`` ids counted within a minute). Past the bound: 429
``rate_limit_exceeded`` with ``Retry-After``.

Signed node messages (:class:`ValidBeats`, :class:`ValidRegistrations`) are counted AS
THEIR SIGNATURE HOLDS (:meth:`_Signed.signed`, called by ``SignedNodeAuth`` right after
the verify, and by the registration route right after ``check_registration``), not as
they begin (limits44 took a count as the request began and gave it back when the message
was refused: a stranger's forged or replayed messages for the node, in flight at once
while their key read or sequence write was awaited, held units of the node's count, and
an honest message arriving then got 429; found 2026-12-07, limits45). Why this is sound:

- nothing a stranger sends is counted: a forgery fails the verify, before the count; a
  copy or replay of a message counted here has a sequence number at or below the highest
  counted for the id (:meth:`IdTries.seq`) and is not counted (the store's sequence check
  refuses it: STALE, copies in one batch too, ``heartbeat_writes.SeqBatcher``); the rest
  are given back when refused (:meth:`_Signed.refused`).
  What remains: a replay of a message never counted here (one the node sent to another
  replica or registry, or before this process started, still within the ±120 s
  ``MAX_CLOCK_SKEW_S``) holds one unit while its sequence number is checked, and each such
  message once (the highest counted moves past it). An honest node sends about
  ``120 / interval`` heartbeats in that window, half the bound, and its own count of the
  last minute is a quarter: a beat of it still fits. The highest is kept with the id's
  entry, dropped once its minute has passed with nothing counted (a message counted
  before may then hold a unit once more while in flight, again once each);
- a flood of valid messages stays bounded as before: each route first checks the count
  without taking (429 before the key look-up and the verify), and the signature's count
  checks again and takes with no await since the verify, which follows the check with no
  await when the key is in memory, so messages sent at once are counted one by one; only
  those that awaited the key's first read from the store may be verified past the bound
  (then 429, nothing written). A message whose authenticator checks no signature, or one
  not counted that was accepted anyway, is counted after (:meth:`_Signed.held`).

- Heartbeats and goodbyes of one node id: :data:`VALID_BEATS_PER_INTERVAL` per heartbeat
  interval (``Settings.heartbeat_interval_s``), i.e. ``ceil(60 * 4 / interval)`` a minute
  (24 at the default 10 s), a bucket of one minute. An honest agent (``node/agent.py``)
  beats once per interval, plus one at once when its operator pauses, resumes or drains it,
  plus its goodbye's at most 3 tries; its registrations are not heartbeats. A 429 is a failed
  heartbeat to it: the next one at the usual interval, still registered.
- Registrations of one node id (its key): :func:`registrations_per_min`,
  :data:`VALID_REGISTRATIONS_PER_INTERVAL` per interval and at least
  :data:`MIN_REGISTRATIONS_PER_MIN` a minute (12 at the default 10 s), a bucket of one
  minute. An honest agent registers as it starts, then again only when told to: a
  heartbeat's 404 ``unknown_node`` (the registry forgot it, a restarted or other replica),
  a gateway id it did not pin, a revoking registry's re-check (its own backoff, a minute
  at least): one a step at most, a step an interval apart but when its operator pauses,
  resumes or drains it (tested with one every other interval: 9 a minute,
  ``tests/registry/test_limits45_valid_registrations.py``). A 429 is a failed registration to it: tried again after its backoff.
  Counted after a failing count's 429 too (a node registering again past its address's
  counts, ``admin.CredentialTries.before_reregister``).
- ``GET /v1/earnings`` and the operator view, per operator token (its SHA-256):
  ``Settings.earnings_reads_per_min`` (``LLM_MESH_EARNINGS_READS_PER_MIN``, default
  :data:`DEFAULT_EARNINGS_READS_PER_MIN`; 0: no limit), the two together, taken AS THE
  REQUEST BEGINS and given back for an unknown token (:class:`EarningsReads`). The
  dashboard's page asks once every 10 s while open.

Each process counts its own (a ``--workers`` registry or replicas allow that many times
more): the bound is on a process's CPU, which is what a flood spends. Per node id, not per
operator: an operator token's holder may make new keys, each an id of its own (its own
node count; not bounded here).
"""

from __future__ import annotations

import math

from LLM_Mesh.config import DEFAULT_EARNINGS_READS_PER_MIN
from LLM_Mesh.core.ratelimit import IdTries, RateLimiter
from LLM_Mesh.errors import RateLimited, ReplayedMessage

__all__ = [
    "DEFAULT_EARNINGS_READS_PER_MIN",
    "MIN_REGISTRATIONS_PER_MIN",
    "VALID_BEATS_PER_INTERVAL",
    "VALID_REGISTRATIONS_PER_INTERVAL",
    "EarningsReads",
    "ValidBeats",
    "ValidRegistrations",
    "beats_per_min",
    "registrations_per_min",
]

VALID_BEATS_PER_INTERVAL = 4
VALID_REGISTRATIONS_PER_INTERVAL = 2
MIN_REGISTRATIONS_PER_MIN = 6


def _interval(interval_s: float) -> float:
    return interval_s if math.isfinite(interval_s) and interval_s > 0 else 10.0


def beats_per_min(interval_s: float) -> int:
    """A node's heartbeats and goodbyes a minute at most, for a heartbeat ``interval_s``."""
    per = VALID_BEATS_PER_INTERVAL
    return max(per, math.ceil(60.0 * per / _interval(interval_s)))


def registrations_per_min(interval_s: float) -> int:
    """A node id's valid registrations a minute at most, for a heartbeat ``interval_s``."""
    per = VALID_REGISTRATIONS_PER_INTERVAL
    return max(MIN_REGISTRATIONS_PER_MIN, math.ceil(60.0 * per / _interval(interval_s)))


class _PerId:
    """One :class:`IdTries` of the limiter (the module docstring)."""

    __slots__ = ("_now", "_tries", "_what")

    def __init__(self, tries: IdTries, now: float, what: str) -> None:
        self._tries, self._now, self._what = tries, now, what

    def check(self, key: str) -> None:
        """429 with ``Retry-After`` when ``key``'s minute is spent; nothing counted."""
        wait = self._tries.wait(key, self._now)
        if wait > 0:
            raise RateLimited(
                f"too many {self._what}: at most {self._tries.per_min} a minute; wait "
                "before sending again",
                retry_after=max(1, math.ceil(wait)),
            )

    def take(self, key: str) -> None:
        """Count one for ``key``, or 429 with ``Retry-After`` when its minute is spent."""
        self.check(key)
        self._tries.count(key, self._now)

    def give(self, key: str) -> None:
        """Give back what :meth:`take` counted (refused for its credential: not valid)."""
        self._tries.give(key, self._now)


class _Signed(_PerId):
    """A signed node message's count, one request's: :meth:`check` as it begins,
    :meth:`signed` as its signature holds, :meth:`refused` or :meth:`held` at its end."""

    __slots__ = ("_counted", "_held")

    def __init__(self, tries: IdTries, now: float, what: str) -> None:
        super().__init__(tries, now, what)
        self._counted: tuple[str, int] | None = None  # what :meth:`signed` counted
        self._held = False

    def signed(self, node_id: str, seq: int) -> None:
        """``node_id``'s signature of message ``seq`` held (called with no await since the
        verify): nothing counted for a ``seq`` at or below the highest counted (a copy or
        replay: the store's sequence check refuses it), else 429 when the minute is spent
        or one counted."""
        known = self._tries.seq(node_id)
        if known is not None and seq <= known:
            return
        self.check(node_id)
        self._tries.count(node_id, self._now, seq)
        self._counted = (node_id, seq)

    def refused(self, exc: BaseException) -> None:
        """The message was refused (``exc``) for its credential (forged, stale, replayed,
        unknown: the failing counts'): what :meth:`signed` counted is given back; its
        sequence number stays the highest counted only when it was refused as replayed (the
        store holds one as high), else it holds no later message back."""
        if self._counted is not None:
            node_id, seq = self._counted
            self._counted = None
            self._tries.give(node_id, self._now)
            if not isinstance(exc, ReplayedMessage):
                self._tries.unseq(node_id, seq)

    def held(self, node_id: str) -> None:
        """The message's credential held: counted now unless :meth:`signed` did (429 when
        the minute is spent)."""
        if self._counted is None and not self._held:
            self.take(node_id)
        self._held = True


class ValidBeats(_Signed):
    """A node id's heartbeats and goodbyes (``api.absorb_heartbeat``, ``deregister_node``)."""

    __slots__ = ()

    def __init__(self, limiter: RateLimiter, now: float, interval_s: float) -> None:
        super().__init__(
            limiter.per_id("valid-beat", beats_per_min(interval_s)), now,
            "heartbeats and goodbyes of this node",
        )  # fmt: skip


class ValidRegistrations(_Signed):
    """A node id's registrations (``api.register_node``)."""

    __slots__ = ()

    def __init__(self, limiter: RateLimiter, now: float, interval_s: float) -> None:
        super().__init__(
            limiter.per_id("valid-registration", registrations_per_min(interval_s)), now,
            "registrations of this node",
        )  # fmt: skip


class EarningsReads(_PerId):
    """An operator token's earnings reads (``GET /v1/earnings``, the operator view); keyed by
    the token's SHA-256. ``per_min`` ``None``: no limit (nothing counted)."""

    __slots__ = ()

    def __init__(self, limiter: RateLimiter, now: float, per_min: int) -> None:
        super().__init__(
            limiter.per_id("earnings-read", per_min), now, "earnings reads with this operator token"
        )
