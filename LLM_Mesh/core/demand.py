"""Demand the network could not place: a sliding-window event counter and the waiting estimate.

Pure, with the clock passed in. The registry (``registry/demand.py``) feeds it
from the gateway's hot path (one dict increment per event) and reads it for
``GET /mesh/demand``; ``core/plan.py`` turns the published numbers into a
node operator's plan.

:class:`WindowCounter` counts events per key over the last ``window_s``
seconds in ``bucket_s`` buckets: adding is O(1) (amortised; old buckets are
dropped as new ones open), memory is at most ``window_s / bucket_s`` buckets
per key, and a count is exact to within one bucket at the window's old end
(an event is counted for between ``window_s - bucket_s`` and ``window_s``
seconds).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = [
    "DEFAULT_BUCKET_S",
    "DEFAULT_WINDOW_S",
    "WindowCounter",
    "explained_queue",
    "requests_waiting",
]

DEFAULT_WINDOW_S = 600.0  # the last 10 minutes
DEFAULT_BUCKET_S = 10.0

K = TypeVar("K", bound=Hashable)


class WindowCounter(Generic[K]):
    """Events per key over a sliding window (see the module docstring)."""

    __slots__ = ("_buckets", "bucket_s", "n_buckets", "window_s")

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, bucket_s: float = DEFAULT_BUCKET_S):
        if window_s <= 0 or bucket_s <= 0 or bucket_s > window_s:
            raise ValueError("need 0 < bucket_s <= window_s")
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self.n_buckets = max(1, math.ceil(window_s / bucket_s))
        # per key: [bucket index, count] pairs, oldest first
        self._buckets: dict[K, deque[list[int]]] = {}

    def _index(self, now: float) -> int:
        return math.floor(now / self.bucket_s)

    def add(self, key: K, now: float, n: int = 1) -> None:
        """Count ``n`` events for ``key`` at ``now``."""
        if n <= 0:
            return
        idx = self._index(now)
        q = self._buckets.get(key)
        if q is None:
            q = self._buckets[key] = deque()
        if q and q[-1][0] >= idx:  # same bucket (or a clock that stepped back)
            q[-1][1] += n
        else:
            q.append([idx, n])
            oldest = idx - self.n_buckets
            while q and q[0][0] <= oldest:
                q.popleft()

    def count(self, key: K, now: float) -> int:
        """Events for ``key`` within the window ending at ``now``."""
        q = self._buckets.get(key)
        if not q:
            return 0
        oldest = self._index(now) - self.n_buckets
        return sum(c for i, c in q if i > oldest)

    def counts(self, now: float) -> dict[K, int]:
        """Every key with events in the window; keys whose events all aged out are dropped."""
        oldest = self._index(now) - self.n_buckets
        out: dict[K, int] = {}
        for key in list(self._buckets):
            q = self._buckets[key]
            while q and q[0][0] <= oldest:
                q.popleft()
            if q:
                out[key] = sum(c for _, c in q)
            else:
                del self._buckets[key]
        return out

    def __len__(self) -> int:
        """Keys held (some may have aged out until the next :meth:`counts`)."""
        return len(self._buckets)


def requests_waiting(
    *,
    gateway_in_flight: int,
    gateway_waiting: int,
    concurrency: int,
    reported_queued: int,
) -> int:
    """Requests for one model that are waiting rather than being served.

    ``gateway_waiting`` (held at the gateway, no node chosen yet: the opt-in
    bounded wait) plus the larger of

    - ``gateway_in_flight - concurrency``: this gateway's requests sent to the
      model's nodes beyond what those nodes run at once (so queued there), live;
    - ``reported_queued``: what the nodes' last heartbeats said is queued on them
      (every gateway's traffic, up to one heartbeat interval old).

    The larger, not the sum: the gateway's excess sits in the very queues the
    heartbeats report, so adding both would count those requests twice.
    """
    excess = max(0, gateway_in_flight - max(0, concurrency))
    return max(0, gateway_waiting) + max(excess, max(0, reported_queued))


def explained_queue(reported_queued: int, known_load: int) -> int:
    """The part of a node's reported queue that counts as demand: at most ``known_load``,
    the requests the mesh knew it had sent the node (in flight or queued there) when the
    report arrived. A registered node serves only its mesh's gateways, so an honest queue
    is made of those; more is the node's word alone (a node reporting 10^6 queued made
    every model it lists look wanted to other operators' `node plan`: found 2026-12-05)."""
    return min(max(0, reported_queued), max(0, known_load))
