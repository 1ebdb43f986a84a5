"""Time-decayed moving averages, with the clock passed in.

``Ewma`` is a plain exponentially weighted moving average whose memory is a
*time* constant ``tau_s`` (not a sample count), so irregular samples weigh by
how long ago they came: ``w = exp(-(now - last) / tau_s)``,
``value = value * w + sample * (1 - w)``.

``PeakEwma`` is the latency estimator of Finagle's and Linkerd's peak-EWMA
balancers: a sample *above* the current value replaces it at once (a node that
slows down is penalised on its first slow answer), a sample below it is
blended in slowly, and reading the value decays it toward zero while no samples
come (with its own ``idle_tau_s``, default ``tau_s``), so an idle node that was
slow gets probed again after a while.
"""

from __future__ import annotations

import math

__all__ = ["Ewma", "PeakEwma"]


def _check_tau(tau_s: float) -> float:
    if not tau_s > 0.0:
        raise ValueError(f"tau_s must be > 0, got {tau_s!r}")
    return float(tau_s)


class Ewma:
    """A time-decayed EWMA; ``value`` is ``initial`` until the first sample."""

    __slots__ = ("_stamp", "tau_s", "value")

    def __init__(self, tau_s: float, initial: float | None = None) -> None:
        self.tau_s = _check_tau(tau_s)
        # read it freely; only ``observe`` writes it (a plain attribute: the router reads
        # it on every pick, where a property's call showed in the profile)
        self.value = initial
        self._stamp: float | None = None

    def observe(self, sample: float, now: float) -> None:
        if self.value is None or self._stamp is None:
            self.value = sample
        else:
            w = math.exp(-max(0.0, now - self._stamp) / self.tau_s)
            self.value = self.value * w + sample * (1.0 - w)
        self._stamp = now


class PeakEwma:
    """Peak-sensitive EWMA: rises at once on a higher sample, decays toward zero when idle."""

    __slots__ = ("idle_tau_s", "peak", "stamp", "tau_s")

    def __init__(self, tau_s: float, idle_tau_s: float | None = None) -> None:
        self.tau_s = _check_tau(tau_s)
        self.idle_tau_s = self.tau_s if idle_tau_s is None else _check_tau(idle_tau_s)
        # the estimate as of ``stamp`` (the last sample), before the idle decay ``get`` applies;
        # read-only outside this class (the router's scoring loop reads them, docs/benchmarks.md)
        self.peak: float | None = None
        self.stamp = 0.0

    def observe(self, sample: float, now: float) -> None:
        if sample < 0.0:
            raise ValueError(f"a latency sample cannot be negative, got {sample!r}")
        if self.peak is None or sample > self.peak:
            self.peak = sample
        else:
            w = math.exp(-max(0.0, now - self.stamp) / self.tau_s)
            self.peak = self.peak * w + sample * (1.0 - w)
        self.stamp = now

    def get(self, now: float) -> float | None:
        """The estimate at ``now`` (``None`` before any sample), decayed since the last sample."""
        if self.peak is None:
            return None
        elapsed = now - self.stamp
        if elapsed <= 0.0:
            return self.peak
        return self.peak * math.exp(-elapsed / self.idle_tau_s)
