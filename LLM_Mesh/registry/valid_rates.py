"""Bounds on what a VALID credential can make the registry do (found 2026-12-07, attack44).

The counts in ``registry/admin.py`` bound the credentials that fail (forged signatures,
unknown tokens). Two kinds of request with a credential that holds had no bound:

- a node's own heartbeats (and goodbyes): each costs an Ed25519 verify (~0.7 ms), a
  sequence-number write and the table's work, and a node may send as many as it likes;
- ``GET /v1/earnings`` (and the dashboard's operator view, which reads the same) with an
  operator's token: each a few indexed reads of the ledger's earnings.

Both are now counted per id in :class:`~LLM_Mesh.core.ratelimit.IdTries` of the process's
limiter (``RateLimiter.per_id``: apart from the clients' scopes, kept only while they
count, at most ``DEFAULT_MAX_IDS`` ids counted within a minute), taken AS THE REQUEST BEGINS,
before the verify or the read, and given back when it was refused for its credential (a
forged, stale or replayed message, an unknown token: those are the failing counts'), so
tries sent at once are counted one by one (rot41's lesson) and a stranger's forgeries never
spend a node's or an operator's allowance. Past the bound: 429 ``rate_limit_exceeded`` with
``Retry-After``, nothing verified nor read.

- Heartbeats and goodbyes of one node id: :data:`VALID_BEATS_PER_INTERVAL` per heartbeat
  interval (``Settings.heartbeat_interval_s``), i.e. ``ceil(60 * 4 / interval)`` a minute
  (24 at the default 10 s), a bucket of one minute. An honest agent (``node/agent.py``)
  beats once per interval, plus one at once when its operator pauses, resumes or drains it,
  plus its goodbye's at most 3 tries; its registrations are not heartbeats. A 429 is a failed
  heartbeat to it: the next one at the usual interval, still registered.
- ``GET /v1/earnings`` and the operator view, per operator token (its SHA-256):
  ``Settings.earnings_reads_per_min`` (``LLM_MESH_EARNINGS_READS_PER_MIN``, default
  :data:`DEFAULT_EARNINGS_READS_PER_MIN`; 0: no limit), the two together. The dashboard's
  page asks once every 10 s while open.

Each process counts its own (a ``--workers`` registry or replicas allow that many times
more): the bound is on a process's CPU, which is what a flood spends.
"""

from __future__ import annotations

import math

from LLM_Mesh.config import DEFAULT_EARNINGS_READS_PER_MIN
from LLM_Mesh.core.ratelimit import IdTries, RateLimiter
from LLM_Mesh.errors import RateLimited

__all__ = [
    "DEFAULT_EARNINGS_READS_PER_MIN",
    "VALID_BEATS_PER_INTERVAL",
    "EarningsReads",
    "ValidBeats",
    "beats_per_min",
]

VALID_BEATS_PER_INTERVAL = 4


def beats_per_min(interval_s: float) -> int:
    """A node's heartbeats and goodbyes a minute at most, for a heartbeat ``interval_s``."""
    interval = interval_s if math.isfinite(interval_s) and interval_s > 0 else 10.0
    return max(VALID_BEATS_PER_INTERVAL, math.ceil(60.0 * VALID_BEATS_PER_INTERVAL / interval))


class _PerId:
    """One :class:`IdTries` of the limiter, taken as a request begins, given back when the
    request was refused for its credential (the module docstring)."""

    __slots__ = ("_now", "_tries", "_what")

    def __init__(self, tries: IdTries, now: float, what: str) -> None:
        self._tries, self._now, self._what = tries, now, what

    def take(self, key: str) -> None:
        """Count one for ``key``, or 429 with ``Retry-After`` when its minute is spent."""
        wait = self._tries.wait(key, self._now)
        if wait > 0:
            raise RateLimited(
                f"too many {self._what}: at most {self._tries.per_min} a minute; wait "
                "before sending again",
                retry_after=max(1, math.ceil(wait)),
            )
        self._tries.count(key, self._now)

    def give(self, key: str) -> None:
        """Give back what :meth:`take` counted (refused for its credential: not valid)."""
        self._tries.give(key, self._now)


class ValidBeats(_PerId):
    """A node id's heartbeats and goodbyes (``api.absorb_heartbeat``, ``deregister_node``)."""

    __slots__ = ()

    def __init__(self, limiter: RateLimiter, now: float, interval_s: float) -> None:
        super().__init__(
            limiter.per_id("valid-beat", beats_per_min(interval_s)), now,
            "heartbeats and goodbyes of this node",
        )  # fmt: skip


class EarningsReads(_PerId):
    """An operator token's earnings reads (``GET /v1/earnings``, the operator view); keyed by
    the token's SHA-256. ``per_min`` ``None``: no limit (nothing counted)."""

    __slots__ = ()

    def __init__(self, limiter: RateLimiter, now: float, per_min: int) -> None:
        super().__init__(
            limiter.per_id("earnings-read", per_min), now, "earnings reads with this operator token"
        )
