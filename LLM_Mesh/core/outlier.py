"""Passive outlier detection: eject a node on a hard failure, bring it back slowly.

Every real request's outcome is a health check. A connect error, a timeout or
a 5xx ejects the node *at once*, for ``base_s × n`` where ``n`` counts the
node's recent ejections (capped at ``max_s``); ``n`` starts again from one once
the node has stayed clear for ``forget_after_s``. When the ejection ends the
node gets traffic back gradually: its *weight* ramps linearly from
``min_weight`` to 1 over ``slow_start_s`` (Envoy's slow start), and the router
divides the node's cost by that weight.

A hard failure of a node its pools cannot spare (one more ejection would take more than
``max_ejected_fraction`` of a model's nodes: a one-node model's node, always) does not eject
it; it *rests* it (:meth:`OutlierDetector.spare`): for as long as an ejection would, on a
count of its own, with no effect on routing. A node that some of its pools can spare and
others cannot is ejected (its count, its time, its slow start after) from those that can
only, and rested in the others, where the router keeps it at full weight
(:meth:`OutlierDetector.routed_weight`; found 2026-12-05, attack31: one pool that could
not spare it kept it in every model's routing, and credited). :meth:`OutlierDetector.back_in` reads either:
how long until a node that just failed a request is worth a client's retry (a 502's
``Retry-After``, ``core/client_retry.retry_estimate``; found 2026-12-05, ``small31``).

The detector keeps per-node state only. Whether an ejection is allowed at all
(never more than ``max_ejected_fraction`` of one model's nodes) depends on the
pool, which the router knows; :func:`may_eject` is that rule.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

__all__ = ["EjectionPolicy", "OutlierDetector", "may_eject"]


@dataclass(frozen=True)
class EjectionPolicy:
    base_s: float = 30.0
    max_s: float = 300.0
    max_ejected_fraction: float = 0.5
    slow_start_s: float = 30.0
    min_weight: float = 0.05
    forget_after_s: float = 600.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError("need 0 < base_s <= max_s")
        if not 0.0 <= self.max_ejected_fraction <= 1.0:
            raise ValueError("max_ejected_fraction must be within [0, 1]")
        if self.slow_start_s < 0 or not 0.0 < self.min_weight <= 1.0:
            raise ValueError("need slow_start_s >= 0 and 0 < min_weight <= 1")

    def duration(self, count: int) -> float:
        """How long the ``count``-th recent ejection lasts."""
        if count < 1:
            raise ValueError("count starts at 1")
        return min(self.max_s, self.base_s * count)


def may_eject(ejected: int, pool_size: int, max_fraction: float) -> bool:
    """Whether one more of ``pool_size`` nodes may be ejected when ``ejected`` already are."""
    return ejected + 1 <= math.floor(pool_size * max_fraction)


class _State:
    __slots__ = ("count", "ejected", "rested", "rested_until", "until")

    def __init__(self) -> None:
        self.count = 0
        self.until = -math.inf
        self.ejected = False
        self.rested = 0  # rests (:meth:`OutlierDetector.spare`), counted as ejections are
        self.rested_until = -math.inf


class OutlierDetector:
    """Per-node ejection state; the caller decides *whether* (see :func:`may_eject`)."""

    def __init__(self, policy: EjectionPolicy | None = None) -> None:
        self.policy = policy or EjectionPolicy()
        self._nodes: dict[str, _State] = {}
        self._heap: list[tuple[float, str]] = []
        # read on every pick, so plain attributes (kept by eject, release_due and forget):
        # when the soonest ejection ends (inf: none pending; release_due reports nothing
        # before then), and whether every weight is 1 (no node ejected since forgotten)
        self.next_release = math.inf
        self.all_full_weight = True
        # nodes that left while their state still counted (:meth:`forget`), and when each
        # state goes stale (a heap: a goodbye reads only those due, not every one kept)
        self._left: dict[str, None] = {}
        self._left_due: list[tuple[float, str]] = []
        self._counted = 0  # states with an ejection counted (count > 0): all_full_weight

    def eject(self, node_id: str, now: float) -> float:
        """Eject ``node_id`` now; returns the time it comes back."""
        st = self._nodes.get(node_id)
        if st is None:
            st = self._nodes[node_id] = _State()
        if st.ejected:
            return st.until
        if st.count == 0:
            self._counted += 1
        if now - st.until > self.policy.forget_after_s:
            st.count = 0
        st.count += 1
        st.until = now + self.policy.duration(st.count)
        st.ejected = True
        heapq.heappush(self._heap, (st.until, node_id))
        self.next_release = self._heap[0][0]
        self.all_full_weight = False
        return st.until

    def spare(self, node_id: str, now: float) -> float:
        """A hard failure of ``node_id`` that its pools could not spare (``may_eject``
        refused): not ejected, but rested as :meth:`eject` would eject it (``base_s × n``, n
        its recent rests, forgotten after ``forget_after_s`` clear; a failure while resting
        does not add one); returns the rest's end. Routing does not read it."""
        st = self._nodes.get(node_id)
        if st is None:
            st = self._nodes[node_id] = _State()
        if st.rested_until > now:
            return st.rested_until
        if now - st.rested_until > self.policy.forget_after_s:
            st.rested = 0
        st.rested += 1
        st.rested_until = now + self.policy.duration(st.rested)
        return st.rested_until

    def back_in(self, node_id: str, now: float, kept: bool = False) -> float:
        """Seconds from ``now`` until ``node_id`` is worth a retry: the rest of its ejection,
        else of its rest (:meth:`spare`), else 0; ``kept``: the retry's model is one whose
        pool could not spare it (the router keeps it there while ejected): its rest."""
        st = self._nodes.get(node_id)
        if st is None:
            return 0.0
        return max(0.0, (st.until if st.ejected and not kept else st.rested_until) - now)

    def is_ejected(self, node_id: str) -> bool:
        st = self._nodes.get(node_id)
        return st is not None and st.ejected

    def ejection_count(self, node_id: str) -> int:
        st = self._nodes.get(node_id)
        return 0 if st is None else st.count

    def release_due(self, now: float) -> list[str]:
        """Nodes whose ejection has ended by ``now`` (each reported once)."""
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            until, node_id = heapq.heappop(heap)
            st = self._nodes.get(node_id)
            if st is not None and st.ejected and st.until == until:
                st.ejected = False
                out.append(node_id)
        self.next_release = heap[0][0] if heap else math.inf
        return out

    def weight(self, node_id: str, now: float) -> float:
        """Slow-start weight in ``[min_weight, 1]``: 1 unless the node came back recently;
        0 while ejected."""
        return 0.0 if self.is_ejected(node_id) else self.routed_weight(node_id, now)

    def routed_weight(self, node_id: str, now: float) -> float:
        """:meth:`weight` as a pick reads it: a node still in a pool while ejected is in one
        that could not spare it (``Router._maybe_eject``), where it is only rested: 1."""
        st = self._nodes.get(node_id)
        if st is None or st.count == 0 or st.ejected:
            return 1.0
        ramp = self.policy.slow_start_s
        since = now - st.until
        if ramp <= 0.0 or since >= ramp:
            return 1.0
        return max(self.policy.min_weight, since / ramp)

    def forget(self, node_id: str, now: float | None = None) -> None:
        """Drop a node's state (it left the mesh), unless ``now`` is given and the state
        still counts: ejected, or ejected within ``forget_after_s`` (its count, its slow
        start). A node that says goodbye and registers again comes back as it left (found
        2026-12-05: the goodbye ended its ejection, so a failing node was back in routing
        at once, and credited uptime). Such states are dropped once stale, at a later
        ``forget`` (a stale state is as none: :meth:`eject` restarts its count, :meth:`weight`
        is 1). A goodbye reads only the kept states whose time is up (found 2026-12-05,
        attack31: it read every one kept and every state, so a flood of ids that each failed
        once and left cost the n-th goodbye n reads: ~9 ms of the gateway's loop at 20,000)."""
        st = self._nodes.get(node_id)
        if st is not None and now is not None and not self._stale(st, now):
            if node_id not in self._left:
                self._left[node_id] = None
                heapq.heappush(self._left_due, (self._stale_at(st), node_id))
        else:
            self._drop(node_id)
        if now is not None:
            due = self._left_due
            while due and due[0][0] <= now:
                _, left = heapq.heappop(due)
                if left not in self._left:
                    continue  # dropped since
                kept = self._nodes.get(left)
                if kept is None or self._stale(kept, now):
                    self._drop(left)
                else:  # back since and failed again: stale later
                    heapq.heappush(due, (self._stale_at(kept), left))
        # a rest (:meth:`spare`) leaves the weight 1: only ejections count here
        self.all_full_weight = self._counted == 0

    def _drop(self, node_id: str) -> None:
        st = self._nodes.pop(node_id, None)
        if st is not None and st.count:
            self._counted -= 1
        self._left.pop(node_id, None)

    def _stale_at(self, st: _State) -> float:
        """When ``st`` goes stale (:meth:`_stale`)."""
        return max(st.until, st.rested_until) + self.policy.forget_after_s

    def _stale(self, st: _State, now: float) -> bool:
        """Its last ejection ended ``forget_after_s`` ago or more (``release_due`` may not
        have run since: the flag alone does not say)."""
        return now >= self._stale_at(st)
