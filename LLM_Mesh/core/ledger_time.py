"""When a ledger checkpoint's key may sign, and how late an entry or checkpoint may be.

The rules ``llm-mesh ledger verify`` holds checkpoints and entries to (``core/ledger_audit.py``);
pure, no I/O, no clock (the caller passes the verifier's time).

Key validity: the registry publishes its checkpoint keys (``GET /v1/ledger/keys``), each
with ``created``, the second its registry first published it (at start, or before its first
checkpoint: ``registry/ledger_signer.py``). Replicas of one network share one ``registry.key``
(``core/key_census.py`` warns otherwise), so the keys follow one another: a key is valid from
its ``created`` until the next key's ``created`` (the rotation away from it), each end widened
by :data:`ROTATION_GRACE_S` (a rolling restart: replicas still on the old key sign a while
after the first one started on the new). A key with no ``created`` published has no window
that can be told: a checkpoint it signs is refused (named so). The ``created`` times are the
registry's own word: they bound a key that was rotated away from (a checkpoint it signs dated
after the rotation), not a registry that publishes false times for its keys.

Times: every entry's ``time_us`` must be at most the time of every checkpoint covering it
(a checkpoint of size ``n`` covers entries ``0 .. n-1``) plus :data:`CLOCK_SKEW_S`, and no
checkpoint (nor an entry no checkpoint covers yet) may be more than :data:`CLOCK_SKEW_S`
ahead of the verifier's clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import datetime, timezone

__all__ = [
    "CLOCK_SKEW_S",
    "ROTATION_GRACE_S",
    "EntryBounds",
    "KeyWindows",
    "ahead_problem",
    "when",
]

# a rolling restart of the replicas onto a rotated key (docs/deploy.md): the old key may
# still sign this long after the new one was first published (and the new one as long before)
ROTATION_GRACE_S = 600
# the clocks of the replicas that write entries and sign checkpoints, and the verifier's
CLOCK_SKEW_S = 300
_US = 1_000_000


def when(time_us: int) -> str:
    """A time in microseconds since 1970 as an ISO 8601 UTC text, for messages."""
    try:
        t = datetime.fromtimestamp(time_us / _US, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{time_us} µs"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class KeyWindows:
    """The time each published checkpoint key may sign at (see the module docstring)."""

    def __init__(self, created: Mapping[str, int | None]) -> None:
        """``created``: each published key (base64) and its ``created`` (seconds), None
        where the registry published none."""
        known = sorted((c, k) for k, c in created.items() if c is not None)
        self._unknown = {k for k, c in created.items() if c is None}
        self._window: dict[str, tuple[int, int | None, str | None]] = {}
        for i, (start, key) in enumerate(known):
            later = next(((c, k) for c, k in known[i + 1 :] if c > start), None)
            end, successor = (later[0], later[1]) if later else (None, None)
            self._window[key] = (start, end, successor)

    def problem(self, key: str, time_us: int) -> str | None:
        """Why ``key`` may not sign a checkpoint dated ``time_us``; None when it may (or
        when the registry does not publish ``key`` at all: a pinned key of its own)."""
        if key in self._unknown:
            return (
                f"signed by key {key}, for which the registry publishes no `created` time "
                "(GET /v1/ledger/keys): when it was the registry's key cannot be told"
            )
        window = self._window.get(key)
        if window is None:
            return None
        start, end, successor = window
        grace = ROTATION_GRACE_S * _US
        if time_us < start * _US - grace:
            return (
                f"dated {when(time_us)}, before its key {key} was introduced "
                f"({when(start * _US)}; grace {ROTATION_GRACE_S} s)"
            )
        if end is not None and time_us > end * _US + grace:
            return (
                f"dated {when(time_us)}, signed by key {key}, which was rotated out at "
                f"{when(end * _US)} (key {successor} introduced; grace {ROTATION_GRACE_S} s)"
            )
        return None


def ahead_problem(time_us: int, now_us: int | None) -> str | None:
    """Why a time is too far in the verifier's future (``now_us``; None: not checked)."""
    if now_us is None or time_us <= now_us + CLOCK_SKEW_S * _US:
        return None
    return (
        f"dated {when(time_us)}, {(time_us - now_us) // _US} s ahead of this verifier's "
        f"clock ({when(now_us)}; skew {CLOCK_SKEW_S} s)"
    )


class EntryBounds:
    """The latest time each entry may carry: the earliest time of the checkpoints covering
    it, plus the skew; past the last checkpoint, the verifier's clock plus the skew."""

    def __init__(self, times: Mapping[int, int], now_us: int | None) -> None:
        """``times``: checkpoint size -> its time (µs), signed ones only."""
        self._sizes = sorted(times)
        self._bound: list[tuple[int, int]] = []  # per size: (latest time, its size)
        best: tuple[int, int] | None = None
        for size in reversed(self._sizes):
            if best is None or times[size] <= best[0]:
                best = (times[size], size)
            self._bound.append(best)
        self._bound.reverse()
        self._now = now_us

    def at(self, index: int) -> tuple[int | None, int, int]:
        """For the entry at ``index``: the latest time it may carry (None: no bound), the
        checkpoint size that bound holds for (0: the verifier's clock), and the index past
        which the bound changes (the entries up to then share it)."""
        skew = CLOCK_SKEW_S * _US
        i = bisect.bisect_right(self._sizes, index)  # the first size > index covers it
        if i == len(self._sizes):
            bound = None if self._now is None else self._now + skew
            return bound, 0, 1 << 62
        time_us, size = self._bound[i]
        return time_us + skew, size, self._sizes[i]

    def problem(self, seq: int, time_us: int, bound: int | None, size: int) -> str | None:
        if bound is None or time_us <= bound:
            return None
        skew = CLOCK_SKEW_S * _US
        if size == 0:
            return f"entry {seq} is {ahead_problem(time_us, bound - skew)}"
        return (
            f"entry {seq} is dated {when(time_us)}, after the checkpoint at size {size} that "
            f"covers it ({when(bound - skew)}; skew {CLOCK_SKEW_S} s)"
        )
