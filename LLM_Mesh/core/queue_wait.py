"""How long a request refused by a full queue should stay away: ``Retry-After``.

One rule, used by the node (its admission queue's 429) and by the gateway (its
own 429 when every node is saturated), so both say the same thing::

    wait = (requests ahead × service time − work already done on the running ones)
           ÷ max_concurrency

that is, the time until the queue ahead of the refused request has drained.
Coming back sooner only meets the same full queue (issue 7, defect 11: a burst
of 20 at a node with 1 running and 8 queued was told ``Retry-After: 1`` though
the queue needed about 8 s).

The service time is measured: :class:`ServiceTime` is an EWMA over the
requests that finished (admission slot taken → given back), with a prior
until the first sample. Everything here is pure; the clock is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["DEFAULT_PRIOR_S", "MAX_WAIT_S", "ServiceTime", "queue_wait_s", "retry_after_header"]

DEFAULT_PRIOR_S = 1.0
"""Service time assumed before a node has finished any request."""

MAX_WAIT_S = 3600.0
"""The longest wait the gateway quotes from what a node says of itself (its heartbeat's
``service_s``, its load), as a node's own ``Retry-After`` is read
(``registry/send.MAX_NODE_RETRY_AFTER_S``); also the longest ``service_s`` taken: 1e308 s
was infinity in ms and made the gateway's 429 a 500 (found 2026-12-05)."""


def queue_wait_s(
    ahead: int, service_s: float, concurrency: int, *, running_elapsed_s: Iterable[float] = ()
) -> float:
    """Seconds until ``ahead`` requests (running + queued) have drained.

    ``running_elapsed_s``: how long each running request has run already (the
    node knows; the gateway does not and passes nothing). A running request
    counts at most one service time, never less than nothing.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if ahead <= 0 or service_s <= 0:
        return 0.0
    done = sum(min(max(0.0, e), service_s) for e in running_elapsed_s)
    return max(0.0, ahead * service_s - done) / concurrency


def retry_after_header(wait_s: float) -> int:
    """``Retry-After`` in whole seconds: the wait rounded up, at least 1."""
    if not math.isfinite(wait_s):
        raise ValueError(f"wait_s must be finite, got {wait_s!r}")
    return max(1, math.ceil(wait_s))


class ServiceTime:
    """EWMA of the time one request holds a slot (per request, not time-decayed).

    ``alpha`` weighs the newest sample; until the first sample the estimate is
    ``prior_s``. A running request older than the estimate raises it
    (:meth:`estimate`): the node is evidently slower than measured so far.
    """

    __slots__ = ("_value", "alpha", "prior_s", "samples")

    def __init__(self, *, alpha: float = 0.2, prior_s: float = DEFAULT_PRIOR_S) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if not prior_s > 0.0:
            raise ValueError("prior_s must be > 0")
        self.alpha = alpha
        self.prior_s = prior_s
        self.samples = 0
        self._value: float | None = None

    @property
    def measured_s(self) -> float | None:
        """The EWMA, ``None`` before the first sample."""
        return self._value

    def observe(self, seconds: float) -> None:
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"a service time must be finite and >= 0, got {seconds!r}")
        self.samples += 1
        if self._value is None:
            self._value = seconds
        else:
            self._value += self.alpha * (seconds - self._value)

    def estimate(self, running_elapsed_s: Iterable[float] = ()) -> float:
        """The service time to plan with: measured (else the prior), or the oldest running."""
        base = self.prior_s if self._value is None else self._value
        return max([base, *running_elapsed_s])
