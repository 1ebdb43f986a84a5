"""Failover helpers: capped exponential backoff and a retry budget.

``Backoff`` gives the delay before retry ``n`` (1-based): ``min(max_s, base_s ×
multiplier^(n-1))``, with "full jitter" (a uniform draw in ``[0, delay]``) when
the caller passes a random number, and says when attempts are used up.

``RetryBudget`` keeps a sick network from turning into a retry storm: over a
sliding ``window_s`` it allows at most ``ratio × requests + min_per_s ×
window_s`` retries (Finagle's budget: 20 % plus 10 a second by default).
Time is passed in; the window is a ring of buckets, so each call is O(1)
amortised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Backoff", "RetryBudget"]


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.05
    max_s: float = 2.0
    multiplier: float = 2.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < self.base_s or self.multiplier < 1.0:
            raise ValueError("need 0 <= base_s <= max_s and multiplier >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def delay(self, retry: int, rand: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        if retry < 1:
            raise ValueError("retry numbers start at 1")
        d = min(self.max_s, self.base_s * self.multiplier ** min(retry - 1, 64))
        if rand is None:
            return d
        if not 0.0 <= rand <= 1.0:
            raise ValueError("rand must be within [0, 1]")
        return d * rand

    def may_attempt(self, attempts_made: int) -> bool:
        """Whether another attempt is allowed after ``attempts_made`` attempts."""
        return attempts_made < self.max_attempts


class RetryBudget:
    """Retries allowed: ``ratio`` of the requests in the last ``window_s``, plus a floor."""

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_s: float = 10.0,
        window_s: float = 10.0,
        buckets: int = 10,
    ) -> None:
        if ratio < 0 or min_per_s < 0 or window_s <= 0 or buckets < 1:
            raise ValueError("need ratio >= 0, min_per_s >= 0, window_s > 0, buckets >= 1")
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.window_s = window_s
        self._width = window_s / buckets
        self._n = buckets
        self._req = [0] * buckets
        self._ret = [0] * buckets
        self._req_sum = 0
        self._ret_sum = 0
        self._slot = -math.inf  # absolute index of the newest bucket

    def _advance(self, now: float) -> int:
        slot = math.floor(now / self._width)
        if slot > self._slot:
            steps = self._n if self._slot == -math.inf else min(self._n, int(slot - self._slot))
            for k in range(1, steps + 1):
                i = int(slot - steps + k) % self._n
                self._req_sum -= self._req[i]
                self._ret_sum -= self._ret[i]
                self._req[i] = 0
                self._ret[i] = 0
            self._slot = slot
        return int(self._slot) % self._n

    def record_request(self, now: float) -> None:
        """Count one original request (not a retry)."""
        i = self._advance(now)
        self._req[i] += 1
        self._req_sum += 1

    def allowed(self, now: float) -> float:
        """Retries the window allows in total at ``now``."""
        self._advance(now)
        return self.ratio * self._req_sum + self.min_per_s * self.window_s

    def try_retry(self, now: float) -> bool:
        """Spend one retry if the budget has room; ``False`` means do not retry."""
        i = self._advance(now)
        if self._ret_sum + 1 > self.ratio * self._req_sum + self.min_per_s * self.window_s:
            return False
        self._ret[i] += 1
        self._ret_sum += 1
        return True

    @property
    def retries_in_window(self) -> int:
        return self._ret_sum

    @property
    def requests_in_window(self) -> int:
        return self._req_sum
