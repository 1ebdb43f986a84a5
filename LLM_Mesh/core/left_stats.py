"""What the router keeps of a node that said goodbye: its observed statistics.

A node's routing statistics (``NodeStats``: the success EWMA, the ttft and per-token
peak-EWMAs, the end-to-end latency EWMA) are the router's judgement of it: a node that fails
or answers slowly costs more and is sent less. A goodbye (``DELETE``, signed by the node's
own key) dropped them, so a node judged poorly said goodbye, registered again and was
scored as a newcomer, on the priors, winning traffic back (found 2026-12-05, ewma31).
:class:`LeftStats` keeps them from the goodbye (``Router.remove_node`` with the time) and
gives them back when the same node id registers again (``Router.upsert_node``): it comes
back as it left, as a twin that stayed registered and idle meanwhile would be. The success
EWMA holds while no sample comes; the peak-EWMAs decay toward zero as they would have (a
slow node is probed again as the twin is); and every answer after it is learned as before
(time-weighted: a node back on a better machine is judged on its new answers at once).

Only what a fresh start would better is kept (:func:`counts`): a success EWMA below 1, or a
peak-EWMA above its prior at the goodbye; a node as good as a newcomer gains nothing by a
goodbye, so it costs no memory. Memory is bounded: at most ``LeftPolicy.max_kept`` nodes
(the oldest goodbye dropped first) and none ``keep_s`` after its goodbye (dropped at a later
goodbye or registration). The ejection state is the outlier detector's, kept likewise
(``OutlierDetector.forget``). An attempt the node had in flight at its goodbye that then
fails hard (a node holding requests it will not answer says goodbye before their timeouts)
counts for it too (:meth:`LeftStats.failed`; found 2026-12-05, ewma31: it counted nowhere,
so such a node was neither ejected nor judged for them). Pure: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from LLM_Mesh.core.ewma import Ewma, PeakEwma
from LLM_Mesh.core.route_types import HARD_FAILURES, Attempt, Outcome
from LLM_Mesh.core.scoring import NodeStats, ScoringPolicy

__all__ = ["LeftPolicy", "LeftStats", "counts"]


@dataclass(frozen=True)
class LeftPolicy:
    # an hour: the success EWMA does not fade while no sample comes, so a node judged by it
    # must stay out of the mesh (earning no uptime) this long to start over
    keep_s: float = 3600.0
    max_kept: int = 10_000  # about 500 bytes each: 5 MB at most

    def __post_init__(self) -> None:
        if self.keep_s < 0 or self.max_kept < 0:
            raise ValueError("need keep_s >= 0 and max_kept >= 0")


def counts(st: NodeStats, now: float, sp: ScoringPolicy) -> bool:
    """Whether ``st``'s statistics cost the node more than a newcomer's priors would at
    ``now``: a failure still in its success EWMA, or a peak-EWMA above its prior."""
    ok = st.success.value
    if ok is not None and ok < 1.0:
        return True
    ttft = st.ttft.get(now)
    if ttft is not None and ttft > sp.prior_ttft_ms:
        return True
    per_token = st.per_token.get(now)
    return per_token is not None and per_token > sp.prior_per_token_ms


class _Kept:
    __slots__ = ("latency", "left_at", "per_token", "success", "ttft")

    def __init__(self, st: NodeStats, left_at: float) -> None:
        self.left_at = left_at
        self.ttft: PeakEwma = st.ttft
        self.per_token: PeakEwma = st.per_token
        self.success: Ewma = st.success
        self.latency: Ewma = st.latency


class LeftStats:
    """node id -> the statistics it left with, oldest goodbye first (see the module)."""

    def __init__(self, policy: LeftPolicy, scoring: ScoringPolicy) -> None:
        self.policy = policy
        self.scoring = scoring
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._kept

    def keep(self, st: NodeStats, now: float | None) -> None:
        """``st``'s node left at ``now``: keep its statistics if they count (None: the
        node is gone for good, nothing kept)."""
        kept = self._kept
        kept.pop(st.node_id, None)
        if now is None:
            return
        self._expire(now)
        if self.policy.max_kept > 0 and counts(st, now, self.scoring):
            kept[st.node_id] = _Kept(st, now)
            while len(kept) > self.policy.max_kept:
                kept.popitem(last=False)

    def failed(self, att: Attempt, now: float, outcome: Outcome, st: NodeStats | None) -> bool:
        """``att``, begun before its node's goodbye, ended at ``now`` in ``outcome``: a hard
        failure counts for the node id's statistics as had it stayed (a success EWMA sample of
        0; a timeout without a first token, a ttft sample): ``st``'s, the node back since,
        else those kept (afresh if none were: a newcomer's, failed). Whether ``st`` learned
        it. Its in-flight counts stay its registration's (``Router._counted``)."""
        if att.lineage is None or outcome not in HARD_FAILURES:
            return False  # an attempt begun on an unknown node; or no failure of the node
        got: NodeStats | _Kept | None = st
        if got is None:
            got = self._kept.get(att.node_id)
        if got is None:
            if self.policy.max_kept == 0:
                return False
            self._expire(now)
            got = _Kept(NodeStats(att.node_id, (), self.scoring), now)
            self._kept[att.node_id] = got
            if len(self._kept) > self.policy.max_kept:
                self._kept.popitem(last=False)
        got.success.observe(0.0, now)
        if outcome is Outcome.TIMEOUT and att.first_token_at is None:
            got.ttft.observe((now - att.started) * 1000.0, now)
        return st is not None

    def restore(self, st: NodeStats, now: float) -> bool:
        """``st``'s node registers anew at ``now``: give it the statistics it left with,
        if kept and not stale; whether it got them."""
        got = self._kept.pop(st.node_id, None)
        self._expire(now)
        if got is None or now - got.left_at >= self.policy.keep_s:
            return False
        st.ttft, st.per_token = got.ttft, got.per_token
        st.success, st.latency = got.success, got.latency
        return True

    def _expire(self, now: float) -> None:
        """Drop those kept ``keep_s`` or more (the oldest first: goodbyes come in order)."""
        kept, keep_s = self._kept, self.policy.keep_s
        while kept:
            first = next(iter(kept.values()))
            if now - first.left_at < keep_s:
                return
            kept.popitem(last=False)
