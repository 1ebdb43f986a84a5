"""What a node costs for one request: an estimated latency in milliseconds.

Lower is better. For a node ``n`` and a request expecting ``T`` tokens::

    service = ttft + per_token × T          peak-EWMAs of what the gateway observed
              (+ the model's cold start if it is not loaded on the node yet:
                 its own ``model_cold_start_ms`` entry, else the node's ``cold_start_ms``)
    service = max(service, age of the oldest-on-average request still waiting
                  for its first token)      a node that stalls looks slow *now*
    cost    = service × (1 + load / max_concurrency)     peak-EWMA × (pending + 1)
                     × (1 + failure_penalty × (1 - success_ewma))
                     × (1 + downtime_penalty × (1 - uptime))
                     × (stale_penalty if the heartbeat is overdue)
                     / slow_start_weight

``load`` is ``max(gateway in-flight, heartbeat in-flight + queued)``: the
gateway's own count is exact for its own traffic, the heartbeat adds what other
gateways sent (up to one interval old). A node is *saturated* when ``load``
reaches ``max_concurrency + max_queue``.

:class:`NodeStats` is the router's mutable view of one node (only what a
gateway can see); :class:`RouteRequest` carries the request's constraints.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from LLM_Mesh.core.ewma import Ewma, PeakEwma
from LLM_Mesh.core.queue_wait import MAX_WAIT_S, queue_wait_s

__all__ = [
    "ROW",
    "UNKNOWN_REGION",
    "NodeStats",
    "RouteRequest",
    "ScoringPolicy",
    "cheapest",
    "cheapest_rows",
    "node_cost",
    "node_row",
    "permits",
    "region_key",
    "region_scopes",
    "service_ms",
    "write_ewmas",
    "write_ewmas_load",
    "write_load",
    "write_load_report",
    "write_report",
    "write_row",
]

# in ``avoid_regions``: also avoid nodes that declared no region (strict region mode)
UNKNOWN_REGION = ""


def region_key(region: str | None) -> str:
    """A region as avoidance compares it: without its blanks at either end, case folded
    (``EU-West`` in a node.toml is the ``eu-west`` a client avoids); none or blanks only:
    :data:`UNKNOWN_REGION`."""
    return region.strip().casefold() if region else UNKNOWN_REGION


def region_scopes(region: str | None) -> frozenset[str]:
    """Every region a node in ``region`` is within, as avoidance compares them: its
    :func:`region_key` and each part of it before a ``-`` (``eu-west-1``: ``eu``, ``eu-west``,
    ``eu-west-1``), so avoiding ``eu`` avoids ``eu-west``; none: :data:`UNKNOWN_REGION`."""
    key = region_key(region)
    scopes = {key}
    i = key.find("-")
    while i != -1:
        if part := key[:i].rstrip("-"):
            scopes.add(part)
        i = key.find("-", i + 1)
    return frozenset(scopes)


@dataclass(frozen=True)
class ScoringPolicy:
    latency_tau_s: float = 10.0  # peak-EWMA blending (Linkerd's default decay)
    idle_tau_s: float = 60.0  # how fast an unprobed estimate decays toward zero
    success_tau_s: float = 30.0
    prior_ttft_ms: float = 200.0  # a node with no samples yet
    prior_per_token_ms: float = 20.0
    failure_penalty: float = 10.0
    downtime_penalty: float = 2.0
    stale_after_s: float = 15.0  # heartbeat interval × 1.5
    stale_penalty: float = 4.0
    default_tokens: int = 256
    specialty_step: float = 0.5  # cost × (1 + step × rank) for the rank-th preferred model

    def __post_init__(self) -> None:
        if self.prior_ttft_ms < 0 or self.prior_per_token_ms < 0:
            raise ValueError("priors cannot be negative")
        if self.failure_penalty < 0 or self.downtime_penalty < 0 or self.stale_penalty < 1:
            raise ValueError("penalties must be >= 0 (stale_penalty >= 1)")


@dataclass(frozen=True)
class RouteRequest:
    """One routing question: which node for ``models[0]`` (or a later, less preferred model)."""

    models: tuple[str, ...]
    expected_tokens: int | None = None
    avoid_regions: frozenset[str] = frozenset()
    allow_nodes: frozenset[str] | None = None
    deny_nodes: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()  # already tried for this request
    # a keyed (paying) request: it may also take the places nodes keep for keyed ones
    keyed: bool = False
    # it opted in to nodes that may keep prompts (``Router.keeps_prompts``): drawn from
    # their sets too; else held out of them (``route_pools.Pool.open_keep``, keeppick34)
    keepers: bool = False
    # any of the four above set (worked out once here, read on every pick)
    constrained: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a route request needs at least one model")
        if self.expected_tokens is not None and self.expected_tokens < 0:
            raise ValueError("expected_tokens cannot be negative")
        constrained = bool(self.avoid_regions or self.deny_nodes or self.exclude) or (
            self.allow_nodes is not None
        )
        object.__setattr__(self, "constrained", constrained)


class NodeStats:
    """The gateway's view of one node. Mutated by the router only."""

    # not sorted: what ``cheapest`` reads of every candidate first, side by side, so a
    # pick on cold caches touches fewer lines of each node (docs/benchmarks.md, 2026-12-04)
    __slots__ = (  # noqa: RUF023
        "ttft",
        "per_token",
        "loaded",
        "waiting",
        "in_flight",
        "hb_load",
        "max_concurrency",
        "success",
        "uptime",
        "hb_at",
        "node_id",
        # the rest
        "busy_until",
        "unavailable",
        "cold_start_ms",
        "ended_at",
        "hb_load_at",
        "latency",
        "max_queue",
        "model_cold_start_ms",
        "models",
        "peak_in_flight",
        "region",
        "region_scopes",
        "reported_service_ms",
        "routable",
        "waiting_since_sum",
        "anon_closed",
        "anon_in_flight",
        "keyed_at",
        "open_below",
        "shown",
        "shown_last",
        "shown_window",
        "answered",
        "shown_elsewhere",
        "held_elsewhere",
    )

    def __init__(
        self,
        node_id: str,
        models: Iterable[str],
        policy: ScoringPolicy,
        *,
        loaded: Iterable[str] | None = None,
        region: str | None = None,
        max_concurrency: int = 1,
        max_queue: int = 8,
        cold_start_ms: float = 30_000.0,
        uptime: float = 1.0,
        now: float = 0.0,
        model_cold_start_ms: Mapping[str, float] | None = None,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("need max_concurrency >= 1 and max_queue >= 0")
        self.node_id = node_id
        self.models = frozenset(models)
        self.loaded = frozenset(self.models if loaded is None else loaded)
        self.region = region_key(region) or None  # as avoid_regions are compared
        self.region_scopes = region_scopes(region)  # avoiding any of them avoids the node
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.cold_start_ms = cold_start_ms
        self.model_cold_start_ms: dict[str, float] = {}
        if model_cold_start_ms:
            self.set_cold_starts(model_cold_start_ms)
        self.uptime = uptime
        self.routable = True
        self.in_flight = 0  # the gateway's own requests on the node
        self.peak_in_flight = 0  # its most since the node's last heartbeat (Router.take_peak)
        self.ended_at = -math.inf  # when one of them last ended
        self.hb_load = 0  # in_flight + queued at the last heartbeat (or a 429)
        self.hb_load_at = now  # when hb_load was set
        self.hb_at = now
        self.waiting = 0  # of in_flight, those still waiting for a first token
        self.waiting_since_sum = 0.0  # sum of their start times
        self.ttft = PeakEwma(policy.latency_tau_s, policy.idle_tau_s)
        self.per_token = PeakEwma(policy.latency_tau_s, policy.idle_tau_s)
        self.success = Ewma(policy.success_tau_s, initial=1.0)
        self.latency = Ewma(policy.latency_tau_s)  # end to end, successes only (for views)
        self.reported_service_ms: float | None = None  # the node's own per-request EWMA
        self.busy_until = 0.0  # now + the Retry-After of the node's last 429 or 503
        # its last refusal was a 503 (paused, draining, no memory) and no heartbeat came since:
        # it is held out of routing (full) until then, but it is no saturated node
        self.unavailable = False
        # when the gateway last sent it a keyed request (its clock; None: never); the
        # count of in_flight at which anonymous ones fill it (route_pools.anonymous_limit)
        # and how many of in_flight are anonymous; an anonymous request's 429 closed it to
        # anonymous ones only, until the next heartbeat (core/route_pools.py)
        self.keyed_at: float | None = None
        self.open_below = self.capacity
        self.anon_in_flight = 0
        self.anon_closed = False
        # the most of this gateway's requests it held at once when one of them was answered
        # (a success), at most its slots, in this window of the clock or the one before
        # (``shown_last``: this one's, ``shown_window``: which); 0 after a hard failure:
        # what it has shown it serves, what the anonymous share counts of it
        # (core/route_pools.shown_slots, core/shown_window.py); ``answered``: one was
        # answered here since its last hard failure (the share counts ``shown`` then)
        self.shown = self.shown_last = 0
        self.shown_window = -(2**62)
        self.answered = False
        # the most any other replica has seen it serve at once (core/fleet_shown.py: the
        # max, not the sum, trust37), counted with ``shown`` as their max; -1: none said (no
        # Redis, or none answered there); ``held_elsewhere``: the requests the other
        # replicas hold there now (their sum), counted with ``in_flight`` in ``2n + 1``
        self.shown_elsewhere = -1
        self.held_elsewhere = 0

    def set_cold_starts(self, cold_ms: Mapping[str, float]) -> None:
        """Per-model load times (ms); non-finite or negative values are ignored."""
        for model, ms in cold_ms.items():
            if model in self.models and math.isfinite(ms) and ms >= 0:
                self.model_cold_start_ms[model] = float(ms)

    def cold_start_for(self, model: str) -> float:
        """What answering ``model`` costs extra while it is not loaded (ms)."""
        return self.model_cold_start_ms.get(model, self.cold_start_ms)

    @property
    def capacity(self) -> int:
        return self.max_concurrency + self.max_queue

    @property
    def load(self) -> int:
        return self.in_flight if self.in_flight > self.hb_load else self.hb_load

    @property
    def saturated(self) -> bool:
        return self.load >= self.capacity


def node_wait_s(st: NodeStats, model: str, tokens: int, now: float, sp: ScoringPolicy) -> float:
    """One full node's drain time: its load × service time ÷ concurrency, or its own 429's
    wait; at most :data:`~LLM_Mesh.core.queue_wait.MAX_WAIT_S`."""
    per_request = st.reported_service_ms
    if per_request is None:
        per_request = service_ms(st, model, tokens, now, sp)
    elif model not in st.loaded:
        per_request += st.cold_start_for(model)
    w = queue_wait_s(st.load, per_request / 1000.0, st.max_concurrency)
    return min(MAX_WAIT_S, max(w, st.busy_until - now))  # the node's word, bounded


def full_waits(
    full: Iterable[NodeStats], model: str, tokens: int, now: float, sp: ScoringPolicy
) -> tuple[float | None, float | None]:
    """Of ``full`` nodes: the soonest drain time of the saturated ones, and the soonest end
    of the unavailable ones' hold (their 503's ``Retry-After``, 0 when it ended); ``None``
    where there is none. Only saturated nodes make a request wait (429); nodes that are
    only unavailable are none to route to (503, found 2026-12-05: a draining node's 503
    made the next request a 429 ``overloaded``)."""
    wait: float | None = None
    held: float | None = None
    for st in full:
        if st.unavailable:
            h = min(MAX_WAIT_S, max(0.0, st.busy_until - now))
            if held is None or h < held:
                held = h
        else:
            w = node_wait_s(st, model, tokens, now, sp)
            if wait is None or w < wait:
                wait = w
    return wait, held


def permits(req: RouteRequest, node: NodeStats) -> bool:
    """Whether the request's constraints allow ``node``."""
    nid = node.node_id
    if nid in req.exclude or nid in req.deny_nodes:
        return False
    if req.allow_nodes is not None and nid not in req.allow_nodes:
        return False
    return req.avoid_regions.isdisjoint(node.region_scopes)


def service_ms(
    node: NodeStats, model: str, tokens: int, now: float, policy: ScoringPolicy
) -> float:
    """Peak-EWMA TTFT + tokens × per-token (+ the model's cold start if not loaded), in ms."""
    ttft = node.ttft.get(now)
    per_tok = node.per_token.get(now)
    service = (policy.prior_ttft_ms if ttft is None else ttft) + tokens * (
        policy.prior_per_token_ms if per_tok is None else per_tok
    )
    if model not in node.loaded:
        service += node.model_cold_start_ms.get(model, node.cold_start_ms)
    return service


def node_cost(
    node: NodeStats, model: str, tokens: int, now: float, policy: ScoringPolicy, weight: float
) -> float:
    """Estimated milliseconds for ``node`` to answer (see the module docstring)."""
    return cheapest((node,), model, tokens, now, policy, lambda _nid, _now: weight)[1]


# a node's scoring inputs for one model, as :func:`node_row` writes them and
# :func:`cheapest_rows` reads them: ``ROW`` floats, in the order the formula reads them
ROW = 16
_NO_PEAK = -1.0  # a peak-EWMA without a sample yet (a peak is never negative)
_ZEROS = (0.0,) * ROW


def node_row(node: NodeStats, model: str) -> list[float]:
    """``node``'s scoring inputs for ``model`` as one row of :data:`ROW` floats: the ttft
    and per-token peak-EWMAs (peak, or -1 before a sample; stamp; idle tau), whether
    ``model`` is loaded (1/0) and its cold start (0 when loaded), the requests waiting for a
    first token and the sum of their start times, the gateway's in-flight count, the
    heartbeat's load, ``max_concurrency``, the success EWMA (1 before a sample: no penalty
    either way), uptime and the last heartbeat's time. Every figure is one a float holds
    exactly (small counts, floats), so :func:`cheapest_rows` computes what the objects
    would give, bit for bit. The router writes a node's rows again whenever one of these
    changes (:func:`write_row`)."""
    row = array("d", _ZEROS)
    write_row(row, 0, node, model)
    return row.tolist()


def write_row(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """Write :func:`node_row` ``(node, model)`` into ``vals[at : at + ROW]`` in place: its
    three parts, which the router also writes one at a time, each after the updates that
    change it (an update reads only what it changed, not the node's other objects)."""
    write_ewmas(vals, at, node, model)
    write_load(vals, at, node, model)
    write_report(vals, at, node, model)


def write_ewmas(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """The row's EWMAs: ttft, per-token, success (an attempt's first token, end, blame)."""
    ew = node.ttft
    peak = ew.peak
    vals[at] = _NO_PEAK if peak is None else peak
    vals[at + 1] = ew.stamp
    vals[at + 2] = ew.idle_tau_s
    ew = node.per_token
    peak = ew.peak
    vals[at + 3] = _NO_PEAK if peak is None else peak
    vals[at + 4] = ew.stamp
    vals[at + 5] = ew.idle_tau_s
    ok = node.success.value
    vals[at + 13] = 1.0 if ok is None else ok


def write_load(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """The row's load: waiting and their start times, in flight, the heartbeat's load
    (an attempt's start, first token and end; a heartbeat; another replica's ``heard``)."""
    vals[at + 8] = node.waiting
    vals[at + 9] = node.waiting_since_sum
    vals[at + 10] = node.in_flight
    vals[at + 11] = node.hb_load


def write_report(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """The row's reported figures: ``model`` loaded and its cold start, concurrency, uptime,
    the last heartbeat's time (a heartbeat, ``heard``, an answer that loaded the model)."""
    if model in node.loaded:
        vals[at + 6] = 1.0
        vals[at + 7] = 0.0
    else:
        vals[at + 6] = 0.0
        vals[at + 7] = node.model_cold_start_ms.get(model, node.cold_start_ms)
    vals[at + 12] = node.max_concurrency
    vals[at + 14] = node.uptime
    vals[at + 15] = node.hb_at


def write_load_report(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """The row's load and reported figures (a heartbeat, ``heard``)."""
    write_load(vals, at, node, model)
    write_report(vals, at, node, model)


def write_ewmas_load(vals: array[float], at: int, node: NodeStats, model: str) -> None:
    """The row's EWMAs and load (an attempt's first token and end)."""
    write_ewmas(vals, at, node, model)
    write_load(vals, at, node, model)


def cheapest(
    nodes: Sequence[NodeStats],
    model: str,
    tokens: int,
    now: float,
    policy: ScoringPolicy,
    weight: Callable[[str, float], float] | None = None,
    factor: float = 1.0,
) -> tuple[NodeStats | None, float]:
    """The node of ``nodes`` with the lowest ``factor × cost`` (the first on a tie) and that
    figure; ``(None, inf)`` for none. ``weight(node_id, now)``: the slow-start weight
    (``None``: 1 for all). :func:`cheapest_rows` over the nodes' :func:`node_row` s."""
    vals = array("d")
    for node in nodes:
        vals.extend(node_row(node, model))
    i, cost = cheapest_rows(vals, range(len(nodes)), nodes, tokens, now, policy, weight, factor)
    return (None, math.inf) if i < 0 else (nodes[i], cost)


def cheapest_rows(
    vals: array[float],
    slots: Iterable[int],
    nodes: Sequence[NodeStats],
    tokens: int,
    now: float,
    policy: ScoringPolicy,
    weight: Callable[[str, float], float] | None = None,
    factor: float = 1.0,
) -> tuple[int, float]:
    """Of the rows ``vals[i * ROW : (i + 1) * ROW]`` for ``i`` in ``slots`` (one model's
    :func:`node_row` s), the one with the lowest ``factor × cost`` (the first on a tie) and
    that figure; ``(-1, inf)`` for none. ``nodes[i]`` is row ``i``'s node, read only for
    its id when ``weight`` applies.

    The one place the cost formula is written (:func:`node_cost` and :func:`cheapest` run
    it too): one loop reading flat rows, because the router runs it for every pick over
    rows it keeps (``IndexedRows``), touching no candidate's Python objects
    (docs/benchmarks.md, "Routing pick").
    """
    best = -1
    best_cost = math.inf
    prior_ttft, prior_per_tok = policy.prior_ttft_ms, policy.prior_per_token_ms
    stale_after = policy.stale_after_s
    exp = math.exp
    scaled = weight is not None or factor != 1.0  # one test a node where neither applies
    for i in slots:
        b = i * 16  # ROW
        # service_ms, written out (with PeakEwma.get's decay): no call per node
        ttft = vals[b]
        if ttft < 0.0:  # no sample yet
            ttft = prior_ttft
        elif now > vals[b + 1]:
            ttft = ttft * exp(-(now - vals[b + 1]) / vals[b + 2])
        per_tok = vals[b + 3]
        if per_tok < 0.0:
            per_tok = prior_per_tok
        elif now > vals[b + 4]:
            per_tok = per_tok * exp(-(now - vals[b + 4]) / vals[b + 5])
        service = ttft + tokens * per_tok
        if not vals[b + 6]:  # the model is not loaded: its cold start
            service += vals[b + 7]
        waiting = vals[b + 8]
        if waiting:
            stalled_ms = (now - vals[b + 9] / waiting) * 1000.0
            if stalled_ms > service:
                service = stalled_ms
        load = vals[b + 10]
        hb_load = vals[b + 11]
        if hb_load >= load:
            load = hb_load
        cost = service * (1.0 + load / vals[b + 12])
        ok = vals[b + 13]
        if ok < 1.0:
            cost *= 1.0 + policy.failure_penalty * (1.0 - ok)
        uptime = vals[b + 14]
        if uptime < 1.0:
            cost *= 1.0 + policy.downtime_penalty * (1.0 - max(0.0, uptime))
        if now - vals[b + 15] > stale_after:
            cost *= policy.stale_penalty
        if scaled:
            if weight is not None:  # weight 1: cost / 1.0 would be cost exactly
                w = weight(nodes[i].node_id, now)
                cost = math.inf if w <= 0.0 else cost / w
            if factor != 1.0:  # 1.0 × cost would be cost exactly
                cost = factor * cost
        if best < 0 or cost < best_cost:
            best, best_cost = i, cost
    return best, best_cost
