"""The router: per-model index, best-of-k choice over scored nodes, outcomes fed back.

For each model the router keeps sets of routable, non-ejected nodes (``core/route_pools.py``):
*open* (with spare capacity), *kept* (only the places the node keeps for keyed requests are
free: full for anonymous requests, a keyed one draws from them when no node is open) and *full*
(saturated). A node moves between them whenever its load changes, so a decision is O(1): draw
``RoutingPolicy.choices`` open nodes at random (4 by default: it measured better than two on the
mixed-speed fleet, docs/benchmarks.md), score each (:func:`~LLM_Mesh.core.scoring.node_cost`),
keep the cheapest. Constraints are applied by ``core/route_sample.py`` (rejection sampling, then
one scan of the open set). A pick scores the open set's rows (``route_pools``, kept in step:
tests/core/test_balancer_rows.py) without touching the candidates' objects; the anonymous
share's slot counts (:meth:`Router.slots`) are kept there too, as each node changes.

Verdicts: ``OK`` with a node; ``SATURATED`` when permitted nodes exist but all are full, with
``wait_s``: for the soonest of a sample of the full nodes, the time until the queue ahead has
drained (:func:`~LLM_Mesh.core.queue_wait.queue_wait_s`, the rule the node's own 429 uses), from
the node's load and its service time per request (the node's own measured EWMA from its
heartbeat, else TTFT + tokens × per-token as the gateway saw them), and never less than what the
node's last 429 said (``Retry-After``); the gateway's ``Retry-After``. ``NO_NODE`` when none is
permitted, routable and not ejected, or the full ones are all held by a 503 (paused, draining:
``NodeStats.unavailable``, no saturated node), with ``wait_s`` the soonest end of such a hold
(its ``Retry-After``), else ``None``.

The gateway calls ``begin`` when it sends to the chosen node, ``first_token`` on the first
streamed token, and ``finish`` with the outcome; hard failures (connect error, timeout, 5xx)
eject the node (:class:`~LLM_Mesh.core.outlier.OutlierDetector`) from each of its models' pools
that can spare it (never more than ``max_ejected_fraction`` of one at once; in the others it
stays, rested: :meth:`Router._maybe_eject`). A 429 marks the node full until its next heartbeat,
but an anonymous request's 429 at a node keeping places marks it full for anonymous requests
only (found 2026-12-05: it closed the node to keyed ones too). ``fault`` counts a finished
attempt as such a failure after the fact (a node's 4xx refusal that another node's answer
contradicted: ``core/failover.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from LLM_Mesh.core.fleet_shown import Elsewhere, apply
from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.left_stats import LeftPolicy, LeftStats
from LLM_Mesh.core.outlier import EjectionPolicy, OutlierDetector
from LLM_Mesh.core.queue_wait import MAX_WAIT_S
from LLM_Mesh.core.route_keep import cheapest_in, full_sets
from LLM_Mesh.core.route_pools import (
    EJECTED,
    NONE,
    Pool,
    Pools,
    RowPart,
    anonymous_limit,
    band,
    heard_keyed,
    unspared,
)
from LLM_Mesh.core.route_sample import sample
from LLM_Mesh.core.route_types import BUSY, HARD_FAILURES, Attempt, Decision, Outcome, Verdict
from LLM_Mesh.core.scoring import (
    NodeStats,
    RouteRequest,
    ScoringPolicy,
    cheapest_rows,
    full_waits,
    write_ewmas,
    write_ewmas_load,
    write_load,
    write_load_report,
    write_report,
    write_row,
)
from LLM_Mesh.core.shown_window import forget_shown, note_shown, roll_shown

__all__ = ["Attempt", "Decision", "Outcome", "Router", "RoutingPolicy", "Verdict"]


@dataclass(frozen=True)
class RoutingPolicy:
    scoring: ScoringPolicy = field(default_factory=ScoringPolicy)
    ejection: EjectionPolicy = field(default_factory=EjectionPolicy)
    left: LeftPolicy = field(default_factory=LeftPolicy)  # statistics kept past a goodbye
    choices: int = 4  # best of 4 measured better than 2 (docs/benchmarks.md)
    max_draws: int = 16

    def __post_init__(self) -> None:
        if self.choices < 1 or self.max_draws < self.choices:
            raise ValueError("need 1 <= choices <= max_draws")


_OK = Verdict.OK  # a module global: reading an enum member off its class costs ~0.1 µs
_NO_POOL = Pool()  # a model with no pool: no slots
_tuple_new = tuple.__new__
_RowPart = RowPart
_load_report, _ewmas_load = write_load_report, write_ewmas_load  # row parts (scoring.py)
_NO_MODELS: frozenset[str] = frozenset()

_KEPT = ("in_flight", "peak_in_flight", "ended_at", "hb_load", "hb_load_at", "waiting", "waiting_since_sum", "routable", "ttft", "per_token",
         "keyed_at", "anon_in_flight", "anon_closed", "shown", "shown_last", "shown_window", "answered", "shown_elsewhere", "held_elsewhere", "success", "latency", "reported_service_ms", "busy_until", "unavailable")  # fmt: skip


class Router:
    """Pure routing state over plain data; every method takes ``now`` from the caller's clock."""

    def __init__(self, policy: RoutingPolicy | None = None, rng: random.Random | None = None):
        self.policy = policy or RoutingPolicy()
        self.outliers = OutlierDetector(self.policy.ejection)
        self.left = LeftStats(self.policy.left, self.policy.scoring)  # core/left_stats.py
        self._rand = (rng or random.Random()).random
        self._nodes: dict[str, NodeStats] = {}
        self._index = Pools()  # core/route_pools.py
        self._place = self._index.place
        self._lineage: dict[str, object] = {}  # per node, from upsert (kept) to remove
        self._pools = self._index.by_model
        self._frac = self.policy.ejection.max_ejected_fraction
        # bumped whenever a node's routing state that ``GET /mesh/nodes`` shows changes other
        # than by the clock: an upsert, a removal, routable, an ejection and its end (the
        # listing's cache key, registry/node_listing.py); never per request
        self.changes = 0

    # -- membership ---------------------------------------------------------------
    def upsert_node(
        self,
        node_id: str,
        models: Iterable[str],
        *,
        now: float,
        loaded: Iterable[str] | None = None,
        region: str | None = None,
        max_concurrency: int = 1,
        max_queue: int = 8,
        cold_start_ms: float = 30_000.0,
        uptime: float = 1.0,
        model_cold_start_ms: Mapping[str, float] | None = None,
    ) -> NodeStats:
        """Add a node or update its registration; observed statistics survive an update.

        ``models`` are all the node hosts, ``loaded`` (default: all) those ready now; the others
        cost ``model_cold_start_ms[model]`` (else ``cold_start_ms``) more, so warm nodes are
        preferred but a cold one still serves."""
        old = self._nodes.get(node_id)
        if old is not None:
            self._index.move(old, NONE)
        st = NodeStats(
            node_id, models, self.policy.scoring, loaded=loaded, region=region,
            max_concurrency=max_concurrency, max_queue=max_queue, cold_start_ms=cold_start_ms,
            uptime=uptime, now=now, model_cold_start_ms=model_cold_start_ms,
        )  # fmt: skip
        if old is not None:
            for name in _KEPT:
                setattr(st, name, getattr(old, name))
        else:
            self._lineage[node_id] = object()
            self.left.restore(st, now)
        st.open_below = anonymous_limit(st, now)
        self._nodes[node_id] = st
        self._refresh(st)
        self.changes += 1
        return st

    def remove_node(self, node_id: str, now: float | None = None) -> None:
        """The node left (a goodbye, a revocation). With ``now``, its ejection (if lately) and
        statistics stay with it should it register again (``forget``, ``LeftStats.keep``)."""
        st = self._nodes.pop(node_id, None)
        if st is not None:
            self.changes += 1
            self._index.move(st, NONE)
            self._place.pop(node_id, None)
            self._lineage.pop(node_id, None)
            self.outliers.forget(node_id, now)
            self.left.keep(st, now)

    def set_routable(self, node_id: str, routable: bool) -> None:
        """Take a node out of routing (draining, offline, heartbeat lost) or back in."""
        st = self._nodes.get(node_id)
        if st is not None and st.routable != routable:
            st.routable = routable
            self.changes += 1
            self._refresh(st)

    def heartbeat(
        self,
        node_id: str,
        now: float,
        *,
        in_flight: int,
        queued: int,
        loaded_models: Iterable[str] | None = None,
        uptime: float | None = None,
        model_cold_start_ms: Mapping[str, float] | None = None,
        service_s: float | None = None,
        keyed_at: float | None = None,
    ) -> None:
        """The node's report; ``service_s``: its measured time per request (EWMA), if sent;
        ``keyed_at``: its last keyed request, if said (``route_pools.heard_keyed``)."""
        st = self._nodes.get(node_id)
        if st is None:
            return
        st.hb_load = max(0, in_flight) + max(0, queued)
        st.hb_load_at = now
        st.unavailable = False
        st.anon_closed = False
        roll_shown(st, now)  # what it has shown it serves, over a window (share35b)
        heard_keyed(st, keyed_at)
        st.open_below = anonymous_limit(st, now)
        if service_s is not None and 0 <= service_s <= MAX_WAIT_S:  # NaN: neither
            st.reported_service_ms = service_s * 1000.0
        st.hb_at = now
        if loaded_models is not None:
            st.loaded = frozenset(loaded_models)
        if model_cold_start_ms:
            st.set_cold_starts(model_cold_start_ms)
        if uptime is not None:
            st.uptime = uptime
        self._restate(st, _load_report)

    def heard(self, node_id: str, at: float, keyed_at: float | None = None) -> bool:
        """The node was heard from at ``at`` through another replica (no load report).

        Its load report went to that replica, so the load this router holds from before ``at``
        (an older heartbeat's, or the capacity a 429 set) is not the node's any more: it is
        dropped, and the router's own in-flight count is what is left. Without this, a 429 at a
        replica the node does not heartbeat to marked it full there for good (no heartbeat of
        its ever came to clear it). ``keyed_at``: the report's last keyed request
        (:meth:`heartbeat`). ``True`` when that made the node open."""
        st = self._nodes.get(node_id)
        if st is None:
            return False
        fresh = at > st.hb_at
        if fresh:  # (its rows and counts rewritten below: roll_shown's too)
            st.hb_at = at
            roll_shown(st, at)
            st.peak_in_flight = st.in_flight  # a heartbeat elsewhere: take_peak's window
        keyed = heard_keyed(st, keyed_at)
        if (st.hb_load == 0 and not st.anon_closed) or at <= st.hb_load_at:
            if keyed:  # fewer places for anonymous requests: its band may change
                st.open_below = anonymous_limit(st, at)
                self._restate(st, _load_report)
            elif fresh:
                self._rewrite(st, write_report)
            return False
        was = band(st)
        st.hb_load = 0
        st.hb_load_at = at
        st.unavailable = False
        st.anon_closed = False
        st.open_below = anonymous_limit(st, at)
        now_band = band(st)
        if now_band != was:
            self._restate(st, _load_report)
            return now_band < was
        self._rewrite(st, _load_report)
        return False

    def node(self, node_id: str) -> NodeStats | None:
        return self._nodes.get(node_id)

    def in_flight_by_node(self, limit: int) -> tuple[dict[str, int], bool]:
        """node id -> requests this router has in flight there, for the nodes with any, at most
        ``limit`` of them (the busiest); and whether some were left out. One scan, read when a
        replica publishes its counters, not on the request path."""
        busy = {nid: st.in_flight for nid, st in self._nodes.items() if st.in_flight > 0}
        if len(busy) <= limit:
            return busy, False
        top = sorted(busy.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, limit)]
        return dict(top), True

    def take_peak(self, node_id: str) -> tuple[int, int, float]:
        """``(in_flight, peak, ended_at)`` of ``node_id``: the requests this router has in
        flight there, the most it had since the previous call (at least ``in_flight``), and when
        one last ended; the peak starts over from ``in_flight``, as when the node was
        :meth:`heard` at another replica (an old peak must not explain a report made long after
        it). Called once per heartbeat of the node here (``registry/uptime_credit.known_load``)."""
        st = self._nodes.get(node_id)
        if st is None:
            return 0, 0, -math.inf
        here = max(0, st.in_flight)
        peak = max(here, st.peak_in_flight)
        st.peak_in_flight = here
        return here, peak, st.ended_at

    def pool_counts(self, model: str, held_out: bool = False) -> tuple[int, int, int]:
        """``(open, full, ejected)`` routable nodes for ``model`` (full: for anonymous ones);
        open and full less those that may keep prompts if ``held_out`` (O(1), route_pools)."""
        p = self._pools.get(model, _NO_POOL)
        o, s = (p.held_open, p.held_shut) if held_out else (0, 0)
        n_open = len(p.open) + len(p.open_keep)
        shut = len(p.kept) + len(p.full) + len(p.kept_keep) + len(p.full_keep) - s
        return n_open - o, shut, p.ejected

    def keeps_prompts(self, node_id: str, models: frozenset[str] | None) -> None:
        """``node_id`` may keep prompts for ``models`` (None: none): ``Pools.set_keeps``."""
        self._index.set_keeps(self._nodes.get(node_id), node_id, models)

    def slots(self, model: str, held_out: bool = False) -> int:
        """The anonymous share's count: of ``model``'s declared slots less its full nodes' idle
        ones (attack33), less those of its nodes that may keep prompts if ``held_out`` (review33c),
        those shown lately here or at other replicas (share35, share35b, redisshare36), at least
        2; all until one has answered here or there. O(1): kept by the pools (``recount``)."""
        p = self._pools.get(model, _NO_POOL)
        counted = p.declared - p.idle - (p.held - p.held_idle if held_out else 0)
        if not p.answered:
            return counted
        seen = p.shown - (p.held_shown if held_out else 0)
        return seen if seen >= 2 or seen >= counted else min(2, counted)

    def fleet_shown(self, elsewhere: Mapping[str, Elsewhere] | None) -> dict[str, str]:
        """``core/fleet_shown.apply``: other replicas' shown slots set; this router's own."""
        return apply(self._nodes.values(), self._index, elsewhere)

    # -- index upkeep -------------------------------------------------------------
    def _restate(self, st: NodeStats, part: _RowPart = write_row) -> None:
        """After a change to what ``st``'s rows hold: its place, and the ``part`` of its
        rows the change touched where it stays open (one that moves in gets whole rows)."""
        if not self._refresh(st):
            self._rewrite(st, part)

    def _rewrite(self, st: NodeStats, part: _RowPart = write_row) -> None:
        """Write ``part`` of ``st``'s rows again if it has rows (``Pools.rewrite``)."""
        self._index.rewrite(st, part)

    def _refresh(self, st: NodeStats) -> bool:
        """Put ``st`` where it belongs; ``True`` when it moved (an open node's rows are then
        written afresh). An ejected node is out of the pools that could spare it when ejected
        (:meth:`_maybe_eject`) or, coming (back) into routing, then; in the others, in its band."""
        if not st.routable:
            return self._index.move(st, NONE)
        nid = st.node_id
        if not self.outliers.is_ejected(nid):
            return self._index.move(st, band(st))
        where = self._place.get(nid, NONE)
        if where == EJECTED:
            return False
        if where == NONE:
            out = st.models - unspared(self._index, st.models, self._frac, placed=False)
        else:
            out = self._index.out.get(nid, _NO_MODELS)
        if out and out == st.models:
            return self._index.move(st, EJECTED)
        return self._index.move(st, band(st), out)

    def tick(self, now: float) -> None:
        """Bring back nodes whose ejection has ended (``pick`` calls it too)."""
        for nid in self.outliers.release_due(now):
            self.changes += 1
            st = self._nodes.get(nid)
            if st is not None:
                self._refresh(st)

    def ejected_for(self, node_id: str, model: str) -> bool:
        """``node_id`` is ejected from ``model``'s pool (:meth:`_maybe_eject`; out of routing:
        from every one)."""
        if not self.outliers.is_ejected(node_id):
            return False
        where = self._place.get(node_id, NONE)
        return where in (NONE, EJECTED) or model in self._index.out.get(node_id, _NO_MODELS)

    def back_in(self, node_id: str, models: Iterable[str], now: float) -> float:
        """Seconds until ``node_id`` is worth a retry for one of ``models`` (a 502's estimate):
        its ejection's end, its rest's where it is still routed one (``OutlierDetector``)."""
        kept = any(not self.ejected_for(node_id, m) for m in models)
        return self.outliers.back_in(node_id, now, kept=kept)

    # -- selection ----------------------------------------------------------------
    def pick(self, req: RouteRequest, now: float) -> Decision:
        """Choose a node for ``req`` (see the module docstring for the verdicts).

        The hot path of every request: one draw (:meth:`IndexedRows.draw_slots`), one scoring
        loop over rows (:func:`~LLM_Mesh.core.scoring.cheapest_rows`), one ``Decision``; the
        ejection heap and the slow-start weights are only consulted when they can matter. A
        request for one model without constraints (the common one) takes a short path that makes
        the decision :meth:`_pick_any` would make (same draws, same node, same cost:
        tests/core/test_balancer_fast_pick.py); every other request, and one whose model has no
        open node, goes there."""
        out = self.outliers
        if out.next_release <= now:
            self.tick(now)
        models = req.models
        if len(models) == 1 and not req.constrained:
            model = models[0]
            pool = self._pools.get(model)
            pol = self.policy
            if pool is not None and not (req.keepers and pool.open_keep):
                bag = pool.open  # those that keep no prompts (route_keep: the others too)
                # no open node: draws nothing (no random number used), _pick_any draws again
                slots = bag.draw_slots(pol.choices, self._rand)
                if slots:
                    sp = pol.scoring
                    tokens = req.expected_tokens
                    if tokens is None:
                        tokens = sp.default_tokens
                    # rank 0: factor 1.0, as _pick_any's 1.0 + step × 0; the rows only
                    nodes = bag.members
                    i, cost = cheapest_rows(bag.vals, slots, nodes, tokens, now, sp,
                                            None if out.all_full_weight else out.routed_weight)  # fmt: skip
                    # tuple.__new__: the named tuple's own __new__ is one more Python call
                    return _tuple_new(Decision, (_OK, nodes[i].node_id, model, cost, None))
        return self._pick_any(req, now)

    def _pick_any(self, req: RouteRequest, now: float) -> Decision:
        """:meth:`pick` for any request (several models, constraints, no open node)."""
        out = self.outliers
        sp = self.policy.scoring
        tokens = sp.default_tokens if req.expected_tokens is None else req.expected_tokens
        weight = None if out.all_full_weight else out.routed_weight
        k = self.policy.choices
        best: NodeStats | None = None
        best_cost = math.inf
        best_model = ""
        wait: float | None = None
        held: float | None = None  # the soonest end of an unavailable node's hold
        for rank, model in enumerate(req.models):
            pool = self._pools.get(model)
            if pool is None:
                continue
            # the open sets (a keyed request: the kept ones when none is open), route_keep
            st, cost = cheapest_in(pool, req, k, self._rand, self._nodes, self.policy.max_draws,
                                   (tokens, now, sp, weight, 1.0 + sp.specialty_step * rank))  # fmt: skip
            if st is not None and (best is None or cost < best_cost):
                best, best_cost, best_model = st, cost, model
            for full in full_sets(pool, req):
                if best is None and len(full):
                    w, h = full_waits(self._sample(full, req, 8), model, tokens, now, sp)
                    if w is not None and (wait is None or w < wait):
                        wait = w
                    if h is not None and (held is None or h < held):
                        held = h
        if best is not None:
            return Decision(Verdict.OK, best.node_id, best_model, best_cost)
        if wait is not None:
            return Decision(Verdict.SATURATED, wait_s=wait)
        return Decision(Verdict.NO_NODE, wait_s=held)

    def _sample(self, bag: IndexedSet[NodeStats], req: RouteRequest, k: int) -> list[NodeStats]:
        return sample(bag, req, k, self._rand, self._nodes, self.policy.max_draws)

    # -- outcomes -----------------------------------------------------------------
    def begin(self, node_id: str, model: str, now: float, keyed: bool = False) -> Attempt:
        """The gateway is sending a request to ``node_id`` now (``keyed``: a keyed one, so
        the node keeps places for such requests now, ``route_pools.anonymous_limit``)."""
        att = Attempt(node_id, model, now, keyed)
        st = self._nodes.get(node_id)
        if st is not None:
            att.lineage = self._lineage.get(node_id)
            st.in_flight += 1
            if st.in_flight > st.peak_in_flight:  # the one compare this adds to the hot path
                st.peak_in_flight = st.in_flight
            st.waiting += 1
            st.waiting_since_sum += now
            if keyed:
                st.keyed_at = now
                st.open_below = anonymous_limit(st, now)
            else:
                st.anon_in_flight += 1
            if st.load >= st.open_below:  # its band may have changed (route_pools.band)
                self._restate(st, write_load)
            else:
                self._rewrite(st, write_load)
        return att

    def first_token(self, att: Attempt, now: float) -> None:
        if att.done or att.first_token_at is not None:
            return
        att.first_token_at = now
        st = self._counted(att)
        if st is not None:
            st.waiting -= 1
            st.waiting_since_sum -= att.started
            st.ttft.observe((now - att.started) * 1000.0, now)
            self._rewrite(st, _ewmas_load)

    def finish(
        self,
        att: Attempt,
        now: float,
        outcome: Outcome,
        *,
        completion_tokens: int = 0,
        ttft_ms: float | None = None,
        retry_after_s: float | None = None,
    ) -> bool:
        """Record how an attempt ended; returns ``True`` when it ejected the node.

        ``retry_after_s``: with ``OVERLOADED``, the node's ``Retry-After`` (its own estimate of
        its queue's drain time); the router's wait for it is never less until then."""
        if att.done:
            return False
        att.done = True
        st = self._counted(att)
        if st is None:  # begun before a goodbye (or on a node unknown then)
            return self._late(att, now, outcome)
        if att.first_token_at is None:
            st.waiting -= 1
            st.waiting_since_sum -= att.started
            if st.waiting == 0:
                st.waiting_since_sum = 0.0
        was = band(st)
        if outcome is Outcome.SUCCESS:  # served this many at once (core/shown_window.py)
            note_shown(st, now)
        st.in_flight -= 1
        if not att.keyed:
            st.anon_in_flight -= 1
        st.ended_at = now
        elapsed_ms = (now - att.started) * 1000.0
        ejected = False
        part: _RowPart = _ewmas_load  # what changed of the node's rows (below: the model loaded)
        if outcome is Outcome.SUCCESS:
            if att.model not in st.loaded and att.model in st.models:
                st.loaded = st.loaded | {att.model}  # it answered, so it is loaded now
                part = write_row
            st.success.observe(1.0, now)
            st.latency.observe(elapsed_ms, now)
            if att.first_token_at is not None:
                first_ms = (att.first_token_at - att.started) * 1000.0
            else:
                first_ms = elapsed_ms if ttft_ms is None else min(ttft_ms, elapsed_ms)
                st.ttft.observe(first_ms, now)
            if completion_tokens > 0:
                st.per_token.observe(max(0.0, elapsed_ms - first_ms) / completion_tokens, now)
        elif outcome in HARD_FAILURES:
            if outcome is Outcome.TIMEOUT and att.first_token_at is None:
                st.ttft.observe(elapsed_ms, now)
            ejected = self._failed(st, now)
        elif outcome in BUSY:
            # an anonymous request's 429 at a node keeping places says it is full for
            # anonymous ones: those kept for keyed ones may be free (found 2026-12-05: it
            # closed the node to keyed requests too, until its next heartbeat)
            if outcome is Outcome.OVERLOADED and not att.keyed and st.open_below < st.capacity:
                st.anon_closed = True
            else:
                st.hb_load = max(st.hb_load, st.capacity)
            st.hb_load_at = now
            st.unavailable = outcome is Outcome.UNAVAILABLE  # held, not saturated: a 503
            if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > 0:
                st.busy_until = max(st.busy_until, now + retry_after_s)
        if ejected or was != band(st):
            self._restate(st, part)
        else:
            self._rewrite(st, part)
        return ejected

    def fault(self, att: Attempt, now: float) -> bool:
        """Count the finished attempt ``att`` as a hard failure of its node after the fact (its
        refusal, which another node's answer contradicted); ``True`` when that ejected the node.
        Nothing for an attempt still open; one begun before a goodbye: ``_late``."""
        if not att.done:
            return False
        st = self._counted(att)
        if st is None:
            return self._late(att, now, Outcome.SERVER_ERROR)
        ejected = self._failed(st, now)
        (self._restate if ejected else self._rewrite)(st, write_ewmas)
        return ejected

    def _failed(self, st: NodeStats, now: float) -> bool:
        """A hard failure: the success EWMA learns it, and the node is ejected if it may be;
        what it has shown it serves starts over (the anonymous share's count, share35)."""
        st.success.observe(0.0, now)
        forget_shown(st)
        return self._maybe_eject(st, now)

    def _late(self, att: Attempt, now: float, outcome: Outcome) -> bool:
        """A hard failure of an attempt begun before its node's goodbye counts for the node id
        (``LeftStats.failed``): back since, it may be ejected for it."""
        st = self._nodes.get(att.node_id)
        if not self.left.failed(att, now, outcome, st) or st is None:
            return False
        ejected = self._maybe_eject(st, now)
        self._restate(st, write_ewmas)
        return ejected

    def _counted(self, att: Attempt) -> NodeStats | None:
        """The node ``att`` was counted on, unless it was removed since (or never known)."""
        st = self._nodes.get(att.node_id)
        if st is None or att.lineage is None or self._lineage.get(att.node_id) is not att.lineage:
            return None
        return st

    def _maybe_eject(self, st: NodeStats, now: float) -> bool:
        """Eject ``st`` from the pools that can spare it (``may_eject`` per model); it stays in
        the others, rested (``OutlierDetector.spare``) as a node no pool can spare is (found
        2026-12-05, attack31: one such pool kept it in all). Ejected for its uptime credit."""
        out, nid = self.outliers, st.node_id
        if not st.routable or out.is_ejected(nid):
            if st.routable and self._place.get(nid) != EJECTED:
                out.spare(nid, now)  # a failure where it is kept: rested there
            return False
        keep = unspared(self._index, st.models, self._frac, placed=True)
        if keep:
            out.spare(nid, now)  # rested instead where it is needed: a 502's estimate
            if len(keep) == len(st.models):
                return False
        out.eject(nid, now)
        self.changes += 1
        if keep:
            self._index.move(st, band(st), st.models - keep)
        else:
            self._index.move(st, EJECTED)
        return True
