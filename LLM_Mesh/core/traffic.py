"""The gateway's own traffic over the last hour: a small in-memory time series.

Pure, with the time passed in (unix seconds: the dashboard draws wall-clock times). The
registry feeds it one finished request at a time (``registry/dashboard/feed.py``, from
the request writer: no I/O, no lock, O(1)) and the dashboard reads it
(``registry/dashboard/``).

- :meth:`TrafficSeries.points`: per ``bucket_s`` (5 s) bucket of the window (1 h):
  requests, errors, tokens, requests/s, tokens/s, and latency and time-to-first-token
  p50/p95 (``core/sketch.py``: within 2 %). A closed bucket's point is computed once and
  kept; a bucket with no request is a point with zero rates and no percentiles.
- :meth:`TrafficSeries.summary`: the figures "now": rates over the last minute,
  percentiles over the last five.
- :meth:`TrafficSeries.history` and :meth:`TrafficSeries.totals`: per node and per model,
  one-minute buckets (requests, errors, tokens, mean latency) over the window; a key not
  heard from for a window is forgotten, and at most ``max_keys`` keys are kept (the least
  recently heard from go first).

Memory: at most ``window_s / bucket_s`` buckets (720); only the last five minutes' keep
their two sparse histograms (what :meth:`TrafficSeries.summary` merges): an older bucket
keeps its point and drops them (~4.5 KB a bucket at 100 requests/s), so the series stops
growing after five minutes, not after the hour. Per key at most ``window_s /
key_bucket_s`` (60) small rows. A clock that steps back counts
the request in the newest bucket.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from LLM_Mesh.core.sketch import LogHistogram

__all__ = ["KeyPoint", "KeyTotals", "Point", "Summary", "TrafficSeries"]

NODE = "node"
MODEL = "model"


@dataclass(frozen=True, slots=True)
class Point:
    """One time bucket of the gateway's traffic."""

    t: float  # the bucket's start, unix seconds
    requests: int
    errors: int
    tokens: int
    req_per_s: float
    tokens_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures "now": rates over the last minute, percentiles over the last five."""

    requests_1m: int
    errors_1m: int
    req_per_s: float
    tokens_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    requests_window: int  # over the whole window


@dataclass(frozen=True, slots=True)
class KeyPoint:
    """One minute of one node's (or model's) traffic."""

    t: float
    requests: int
    errors: int
    tokens: int
    latency_ms: float | None  # mean over the minute's successful requests


@dataclass(frozen=True, slots=True)
class KeyTotals:
    requests: int
    errors: int
    tokens: int


# a settled bucket's histograms: never added to (observe only feeds the newest bucket)
_SETTLED = LogHistogram()


class _Bucket:
    __slots__ = ("errors", "index", "latency", "point", "requests", "tokens", "ttft")

    def __init__(self, index: int, accuracy: float) -> None:
        self.index = index
        self.requests = self.errors = self.tokens = 0
        self.latency = LogHistogram(accuracy)
        self.ttft = LogHistogram(accuracy)
        self.point: Point | None = None  # kept once the bucket is closed


class _KeyRows:
    """One key's one-minute rows ``[index, requests, errors, tokens, latency sum, n]``
    and their running totals over the window."""

    __slots__ = ("errors", "requests", "rows", "tokens")

    def __init__(self) -> None:
        self.rows: deque[list[float]] = deque()
        self.requests = self.errors = self.tokens = 0

    def expire(self, oldest: int) -> None:
        rows = self.rows
        while rows and rows[0][0] < oldest:
            row = rows.popleft()
            self.requests -= int(row[1])
            self.errors -= int(row[2])
            self.tokens -= int(row[3])


class TrafficSeries:
    """See the module docstring."""

    def __init__(
        self,
        *,
        window_s: float = 3600.0,
        bucket_s: float = 5.0,
        key_bucket_s: float = 60.0,
        max_keys: int = 10_000,
        accuracy: float = 0.02,
    ) -> None:
        if not 0 < bucket_s <= window_s or not 0 < key_bucket_s <= window_s or max_keys < 1:
            raise ValueError("need 0 < bucket_s, key_bucket_s <= window_s and max_keys >= 1")
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self.key_bucket_s = float(key_bucket_s)
        self.max_keys = max_keys
        self.accuracy = accuracy
        self.n_buckets = max(1, math.ceil(window_s / bucket_s))
        self._five_buckets = math.ceil(300.0 / self.bucket_s)  # summary's percentiles
        self.n_key_buckets = max(1, math.ceil(window_s / key_bucket_s))
        self._buckets: deque[_Bucket] = deque()
        self._keys: dict[str, OrderedDict[str, _KeyRows]] = {
            NODE: OrderedDict(),
            MODEL: OrderedDict(),
        }

    # -- feeding ------------------------------------------------------------------------

    def observe(
        self,
        now: float,
        *,
        ok: bool,
        failed: bool,
        latency_ms: float | None = None,
        ttft_ms: float | None = None,
        tokens: int = 0,
        node_id: str | None = None,
        model: str | None = None,
    ) -> None:
        """One finished request: ``ok`` (answered), ``failed`` (an error; a cancelled
        request is neither). Latency and TTFT are samples of answered requests only."""
        b = self._bucket(now)
        b.requests += 1
        tokens = max(0, tokens)
        b.tokens += tokens
        if failed:
            b.errors += 1
        if ok:
            if latency_ms is not None:
                b.latency.add(latency_ms)
            if ttft_ms is not None:
                b.ttft.add(ttft_ms)
        key_index = math.floor(now / self.key_bucket_s)
        lat = latency_ms if ok and latency_ms is not None else None
        if node_id:
            self._key_add(NODE, node_id, key_index, failed, tokens, lat)
        if model:
            self._key_add(MODEL, model, key_index, failed, tokens, lat)

    def _bucket(self, now: float) -> _Bucket:
        index = math.floor(now / self.bucket_s)
        q = self._buckets
        if q and q[-1].index >= index:  # this bucket, or a clock that stepped back
            return q[-1]
        b = _Bucket(index, self.accuracy)
        q.append(b)
        self._expire(index)
        self._settle(index)
        return b

    def _settle(self, current: int) -> None:
        """Buckets older than the summary's five minutes keep their point, not their
        histograms (module doc); newest first, up to the first one already settled."""
        keep_from = current - self._five_buckets + 1
        for b in reversed(self._buckets):
            if b.index >= keep_from:
                continue
            if b.latency is _SETTLED:
                break
            if b.point is None:
                b.point = self._point(b, self.bucket_s)
            b.latency = b.ttft = _SETTLED

    def _expire(self, index: int) -> None:
        oldest = index - self.n_buckets + 1
        q = self._buckets
        while q and q[0].index < oldest:
            q.popleft()

    def _key_add(
        self, kind: str, key: str, index: int, failed: bool, tokens: int, latency: float | None
    ) -> None:
        keys = self._keys[kind]
        rows = keys.get(key)
        if rows is None:
            rows = keys[key] = _KeyRows()
            if len(keys) > self.max_keys:
                keys.popitem(last=False)
        else:
            keys.move_to_end(key)
        q = rows.rows
        if q and q[-1][0] >= index:
            row = q[-1]
        else:
            row = [float(index), 0.0, 0.0, 0.0, 0.0, 0.0]
            q.append(row)
            rows.expire(index - self.n_key_buckets + 1)
        row[1] += 1
        rows.requests += 1
        row[3] += tokens
        rows.tokens += tokens
        if failed:
            row[2] += 1
            rows.errors += 1
        if latency is not None:
            row[4] += latency
            row[5] += 1

    # -- reading ------------------------------------------------------------------------

    def _point(self, b: _Bucket, elapsed_s: float) -> Point:
        lat50, lat95 = b.latency.quantiles((0.5, 0.95))
        ttft50, ttft95 = b.ttft.quantiles((0.5, 0.95))
        return Point(
            t=b.index * self.bucket_s, requests=b.requests, errors=b.errors, tokens=b.tokens,
            req_per_s=b.requests / elapsed_s, tokens_per_s=b.tokens / elapsed_s,
            latency_p50_ms=lat50, latency_p95_ms=lat95, ttft_p50_ms=ttft50, ttft_p95_ms=ttft95,
        )  # fmt: skip

    def _empty(self, index: int) -> Point:
        return Point(index * self.bucket_s, 0, 0, 0, 0.0, 0.0, None, None, None, None)

    def points(self, now: float, since: float | None = None) -> list[Point]:
        """Every bucket of the window up to ``now``, oldest first (or those starting at or
        after ``since``); the current bucket's rates are over its elapsed part."""
        current = math.floor(now / self.bucket_s)
        self._expire(current)
        first = current - self.n_buckets + 1
        if since is not None:
            first = max(first, math.floor(since / self.bucket_s))
        by_index = {b.index: b for b in self._buckets if b.index >= first}
        out: list[Point] = []
        for index in range(first, current + 1):
            b = by_index.get(index)
            if b is None:
                out.append(self._empty(index))
            elif index < current:
                if b.point is None:
                    b.point = self._point(b, self.bucket_s)
                out.append(b.point)
            else:
                elapsed = min(self.bucket_s, max(1.0, now - index * self.bucket_s))
                out.append(self._point(b, elapsed))
        return out

    def summary(self, now: float) -> Summary:
        """Rates over the last minute, percentiles over the last five, requests in the window."""
        current = math.floor(now / self.bucket_s)
        self._expire(current)
        minute = current - math.ceil(60.0 / self.bucket_s) + 1
        five = current - self._five_buckets + 1
        req = err = tok = total = 0
        lat = LogHistogram(self.accuracy)
        ttft = LogHistogram(self.accuracy)
        for b in self._buckets:
            total += b.requests
            if b.index >= minute:
                req, err, tok = req + b.requests, err + b.errors, tok + b.tokens
            if b.index >= five:
                lat.merge(b.latency)
                ttft.merge(b.ttft)
        # the last minute: whole buckets before the current one, plus its elapsed part
        span = min(
            60.0, (current - minute) * self.bucket_s + max(1.0, now - current * self.bucket_s)
        )
        lat50, lat95 = lat.quantiles((0.5, 0.95))
        ttft50, ttft95 = ttft.quantiles((0.5, 0.95))
        return Summary(
            requests_1m=req, errors_1m=err, req_per_s=req / span, tokens_per_s=tok / span,
            latency_p50_ms=lat50, latency_p95_ms=lat95, ttft_p50_ms=ttft50, ttft_p95_ms=ttft95,
            requests_window=total,
        )  # fmt: skip

    def history(self, kind: str, key: str, now: float) -> list[KeyPoint]:
        """One node's (``kind="node"``) or model's (``"model"``) minutes over the window,
        oldest first, minutes without a request included."""
        current = math.floor(now / self.key_bucket_s)
        first = current - self.n_key_buckets + 1
        rows = self._keys[kind].get(key)
        by_index: dict[int, list[float]] = {}
        if rows is not None:
            rows.expire(first)
            by_index = {int(r[0]): r for r in rows.rows}
        out: list[KeyPoint] = []
        for index in range(first, current + 1):
            r = by_index.get(index)
            t = index * self.key_bucket_s
            if r is None:
                out.append(KeyPoint(t, 0, 0, 0, None))
            else:
                mean = r[4] / r[5] if r[5] else None
                out.append(KeyPoint(t, int(r[1]), int(r[2]), int(r[3]), mean))
        return out

    def totals(self, kind: str, now: float) -> dict[str, KeyTotals]:
        """Per node (or model) heard from in the window: its requests, errors and tokens."""
        first = math.floor(now / self.key_bucket_s) - self.n_key_buckets + 1
        keys = self._keys[kind]
        out: dict[str, KeyTotals] = {}
        for key in list(keys):
            rows = keys[key]
            rows.expire(first)
            if not rows.rows:
                del keys[key]
                continue
            out[key] = KeyTotals(rows.requests, rows.errors, rows.tokens)
        return out
