"""Uptime rewards: what a node earns for a period of healthy availability (pure).

For each reward period (``period_s`` long, aligned to the Unix epoch in UTC, so every
registry replica agrees on the boundaries) a node earns, from the mint to its
operator's account,

    amount = rate × healthy_s / 3600 × performance × success

micro-NetworkTokens, rounded down, where

``rate``
    micro-NetworkTokens per hour of full availability (``Settings.reward_rate``; 0: off);
``healthy_s``
    the seconds in the period the node was routable — online, heard from within the
    heartbeat expiry, its last active check not failed — at most the period
    (:func:`heartbeat_credit_ms` measures it heartbeat by heartbeat,
    :func:`close_uptime` cuts it into periods);
``success``
    ``(ok + 1) / (ok + failed + 1)`` over the requests the node answered in the period
    (:func:`success_milli`): 1 with none, near 0 for a node that fails everything;
``performance``
    in [0.5, 1.5]: per model the node served, its speed (completion tokens per second
    of request latency) ÷ the median speed of every node that served that model in the
    period and earns uptime (:func:`peer_stats`: not simulated nor held; 1 where fewer
    than two did), clamped, then averaged weighted by the node's successful requests
    (:func:`performance_milli`); 1 with no requests.

The factors are integers in thousandths (rounded down), so the amount is integer
arithmetic (:func:`reward_amount`); money is never a float.

Only a node that declares at least one model it does not simulate earns uptime
(:func:`earns_uptime`): a node whose every model runs on a simulated engine (or that
lists none) serves no model, and its availability is worth nothing to users.

``healthy_s`` is cut for refusals where they are seen, at each heartbeat: the heartbeat's
replica counts the requests it sent the node that it answered and that it refused (429,
503, 401, or a 4xx another node then answered), each count halving every
:data:`REFUSAL_HALF_LIFE_S` (:func:`decay`), and the heartbeat credits at most the time
since the node's previous heartbeat there × ``(answered + 1) / (answered + refused + 1)``
(:func:`answer_share_milli`, :func:`refusal_credit_s`): a node refusing 99 of the 100
requests it is sent is credited about 2 % of its time, not all of it; a node sent
nothing, or answering everything, keeps its full credit.

A node sent less because of load it *says* it has earns nothing for load nobody sent it:
a registered node serves only its mesh's gateways' requests, and they count what they
have in flight at it, so the interval a heartbeat vouches for is credited in full only
when the node's previous load report there (``in_flight + queued``: what steered the
router over it) is at most the load the mesh knows it sent plus a small slack
(:data:`LOAD_SLACK`, never reaching its capacity: :func:`load_slack`), else the explained
share of it (known ÷ claimed: :func:`explained_load_credit_s`). A report in transit while
the requests it counts were answered is explained by the gateway's peak in flight since
the node's previous report, when one ended within :data:`LOAD_TRANSIT_S` of its arrival
(:func:`known_at_report`).

An operator holds the keys of every node it registers, so uptime is bounded per operator,
not per id: its nodes' credited healthy time in a period is at most ``uptime_nodes``
periods' worth (``Settings.reward_uptime_nodes``, default :data:`UPTIME_NODES`), split
over them in proportion when they pass it (:func:`operator_uptime_ms`); one node is never
cut.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CARRY_MS",
    "LOAD_SLACK",
    "LOAD_TRANSIT_S",
    "MILLI",
    "PERF_MAX_MILLI",
    "PERF_MIN_MILLI",
    "REFUSAL_HALF_LIFE_S",
    "START_CLOSE_S",
    "UPTIME_NODES",
    "ModelStats",
    "NodePeriod",
    "Reward",
    "answer_share_milli",
    "close_uptime",
    "decay",
    "due_period",
    "earns_uptime",
    "explained_load_credit_s",
    "heartbeat_credit_ms",
    "known_at_report",
    "load_slack",
    "operator_uptime_ms",
    "peer_speeds",
    "peer_stats",
    "performance_milli",
    "refusal_credit_s",
    "registered_since",
    "reward_amount",
    "rewards",
    "success_milli",
    "uptime_period",
]

MILLI = 1000
PERF_MIN_MILLI = 500
PERF_MAX_MILLI = 1500
#: Healthy time counted beyond a period's length that carries into the next period
#: (heartbeats that vouch for the end of a period land after it); more is dropped.
CARRY_MS = 60_000
_MS_PER_HOUR = 3_600_000
#: How fast a node's counts of answered and refused requests fade (:func:`decay`): a
#: refusal weighs half as much after this long, so the share follows what the node did
#: over the last several minutes, not over one heartbeat (a node refusing, then marked
#: busy until its next heartbeat, is sent about one request per heartbeat).
REFUSAL_HALF_LIFE_S = 300.0


def heartbeat_credit_ms(
    *, was_online: bool, since_ms: int | None, at_ms: int, limit_ms: int
) -> int:
    """The routable time a heartbeat at ``at_ms`` vouches for, in ms.

    ``since_ms`` is the node's previous heartbeat (or registration), ``was_online``
    whether its state since then was ONLINE; ``limit_ms`` the heartbeat expiry (a node
    not heard from for that long is out of routing), or 0 when this registry's last
    active check of the node failed (it was not routable). Nothing before a first
    heartbeat, nothing for a clock that went back.
    """
    if not was_online or since_ms is None or limit_ms <= 0:
        return 0
    return max(0, min(at_ms - since_ms, limit_ms))


def serving(
    *,
    check_failed: bool,
    ejected: bool,
    refused_gateway_at: float | None,
    refusing_since: float | None,
    refused_at: float | None,
    now: float,
    window_s: float,
) -> bool:
    """Whether a heartbeat at ``now`` earns uptime credit, from the heartbeat's replica's
    own view of the node: not when its last active check failed, nor while the router has
    it ejected as an outlier (5xx, timeouts: out of routing), nor within ``window_s`` of
    its refusing the gateway's key (401), nor while it keeps refusing (429/503) every
    request the replica sends it: refusals over ``window_s`` or longer, answering none in
    between (``refusing_since``: the first since its last answer), the latest
    (``refused_at``) within ``window_s``. A busy node that answers some requests keeps its
    credit, and so does one that refused once and was not asked again.
    """
    if check_failed or ejected:
        return False
    if refused_gateway_at is not None and now - refused_gateway_at < window_s:
        return False
    if refusing_since is None or refused_at is None:
        return True
    return not (now - refusing_since >= window_s and now - refused_at < window_s)


def decay(count: float, elapsed_s: float, half_life_s: float = REFUSAL_HALF_LIFE_S) -> float:
    """``count`` after ``elapsed_s`` more seconds, halving every ``half_life_s`` (a clock
    that went back decays nothing)."""
    if half_life_s <= 0:
        raise ValueError("a half-life is positive")
    if elapsed_s <= 0 or count <= 0:
        return max(0.0, count)
    return float(count * 0.5 ** (elapsed_s / half_life_s))


def answer_share_milli(answered: float, refused: float) -> int:
    """``(answered + 1) / (answered + refused + 1)`` in thousandths, rounded down: 1000 for
    a node refusing nothing (or sent nothing), 500 after one refusal and no answer, about 20
    for 99 refusals to 1 answer."""
    if answered < 0 or refused < 0 or answered != answered or refused != refused:
        raise ValueError("answer counts are not negative")
    if refused == 0:  # all of it: (a + 1) * 1000 // (a + 1) in floats can be 999
        return MILLI
    return int((answered + 1) * MILLI // (answered + refused + 1))


def refusal_credit_s(credit_s: float, since_s: float | None, share_milli: int) -> float:
    """The most routable time a heartbeat may credit (``credit_s``: the heartbeat expiry, or
    0), cut for the node's answer share: all of it at 1000, else the time since its
    previous heartbeat at this replica (``since_s``; ``None``: the expiry) × the share, so
    the credit (at most the time since its previous heartbeat) is that share of it."""
    if credit_s <= 0 or share_milli >= MILLI:
        return max(0.0, credit_s)
    base = credit_s if since_s is None else max(0.0, min(credit_s, since_s))
    return base * max(0, share_milli) / MILLI


LOAD_SLACK = 2
"""Requests a load report may claim beyond what the mesh knows it sent the node and keep
its uptime credit (timing: a request another replica began after its last published
count, one whose gateway gave up while the node winds it down); :func:`load_slack`."""


LOAD_TRANSIT_S = 1.0
"""Seconds a load report may take from the node to the gateway: one of the gateway's
requests that ended this long before the report arrived may still be in it
(:func:`known_at_report`)."""


def known_at_report(
    in_flight: int, peak: int, ended_at: float, now: float, transit_s: float = LOAD_TRANSIT_S
) -> int:
    """The requests a gateway knows it had at a node when the node's load report (arriving
    ``now``) was made: those in flight now (``in_flight``), or its most in flight there
    since the node's previous report (``peak``) when one ended at most ``transit_s`` before
    (``ended_at``): the report may have counted them on its way while their answers came
    back. A peak whose requests all ended earlier explains nothing: the node knew they
    were done (a node answering a request, then reporting itself full, is not explained)."""
    here = max(0, in_flight)
    if now - ended_at <= transit_s:
        return max(here, peak)
    return here


def load_slack(capacity: int, slack: int = LOAD_SLACK) -> int:
    """The slack for a node of ``capacity`` (``max_concurrency + max_queue``): ``slack``,
    at most ``capacity - 1``, so a report of full is never explained by the slack alone."""
    return max(0, min(slack, capacity - 1))


def explained_load_credit_s(
    credit_s: float,
    since_s: float | None,
    *,
    claimed: int,
    known: int,
    capacity: int,
    slack: int = LOAD_SLACK,
) -> float:
    """The most a heartbeat may credit (``credit_s``, as :func:`refusal_credit_s` left it)
    for the interval since the node's previous heartbeat (``since_s``; ``None``: the
    expiry), over which that heartbeat's load report (``claimed``: its ``in_flight +
    queued``) steered the router: all of it when the claim is at most the load the mesh
    knows it sent (``known``: requests the gateways count in flight there, their word, not
    the node's) plus :func:`load_slack`, else the explained share of the interval,
    ``min(credit_s, since_s) × known ÷ claimed``: load nobody sent earns nothing."""
    if credit_s <= 0:
        return 0.0
    claimed, known = max(0, claimed), max(0, known)
    if claimed <= known + load_slack(capacity, slack):
        return credit_s
    base = credit_s if since_s is None else max(0.0, min(credit_s, since_s))
    return base * known / claimed


def close_uptime(
    counter_ms: int, mark_ms: int, period_ms: int, carry_ms: int = CARRY_MS
) -> tuple[int, int]:
    """Cut a node's healthy-time counter at a period's close: ``(healthy_ms, new_mark)``.

    ``counter_ms`` only grows (summed heartbeat credits); ``mark_ms`` is what the
    previous close left (0 before the first). The period gets what the counter gained,
    at most ``period_ms``; up to ``carry_ms`` beyond that stays for the next period (the
    close runs a little after the boundary, and a heartbeat just after it vouches for
    time before it), the rest is dropped (a first close, a registry that closed no
    period for a while). A counter below the mark (its row was made anew) starts over.
    """
    if period_ms <= 0 or carry_ms < 0:
        raise ValueError("a period is positive and the carry not negative")
    base = mark_ms if counter_ms >= mark_ms else 0
    healthy = min(counter_ms - base, period_ms)
    return healthy, max(base + healthy, counter_ms - carry_ms)


def uptime_period(
    last_beat_s: float | None, last_closed: int | None, due: int, period_s: int
) -> int:
    """The period (its start) a node's uptime counted since its last close is closed in:
    ``due``, the latest period due, unless the node's last credited heartbeat
    (``last_beat_s``) came before ``due`` began (every registry was down since, or the
    node was): then the period that credit was earned in (the instant just before the
    heartbeat: a credit vouches for the time before it), when that is after the node's
    last closed period ``last_closed``. Found 2026-12-05: a close after every registry was
    down for a period or more labelled the uptime of before the stop with the latest
    period, in which the node was never up, and judged it by that period's requests."""
    if period_s <= 0:
        raise ValueError("a period is positive")
    if last_beat_s is None:
        return due
    earned = math.floor((last_beat_s - 0.001) / period_s) * period_s
    if earned >= due or (last_closed is not None and earned <= last_closed):
        return due
    return earned


def registered_since(registered_s: float, start: int, period_s: int) -> bool:
    """Whether a node whose row was made at ``registered_s`` (its first registration, kept
    by every re-registration; a row made anew after retention counts from then) came after
    the period starting at ``start`` ended: none of the uptime its counter gained was earned
    in that period, so its close leaves the node to the close of a period it was up in.
    Found 2026-12-07 (newuser43): a registry started at 13:35 closed the 12:00 period
    (hourly; the due one) with the uptime a node registered at 13:32 earned from 13:32 to
    13:35, labelled 12:00."""
    if period_s <= 0:
        raise ValueError("a period is positive")
    return registered_s >= start + period_s


UPTIME_NODES = 4
"""Nodes' worth of uptime one operator is credited per period by default
(``Settings.reward_uptime_nodes``; 0: no cap): :func:`operator_uptime_ms`."""

START_CLOSE_S = 30.0
"""The longest a registry's start waits for the due period's close by default
(``Settings.reward_start_close_s``; ``registry/rewards.RewardTask.close_first``)."""


def operator_uptime_ms(
    healthy: Mapping[str, int], *, budget_ms: int, spent_ms: int = 0
) -> dict[str, int]:
    """One operator's nodes' healthy time in a period (``healthy``: node → ms, those that
    earn), cut to what is left of its budget (``budget_ms``: ``uptime_nodes`` × the period;
    ``spent_ms``: the healthy time of its nodes already paid in that period): as given when
    it fits, else each node's share, ``healthy × left ÷ total`` rounded down, so the sum
    never passes the budget however many node ids the operator holds. Found 2026-12-05:
    each id earned the full rate, so an operator earned uptime by the id, not by capacity."""
    if budget_ms < 0 or spent_ms < 0 or any(h < 0 for h in healthy.values()):
        raise ValueError("a budget and healthy times are not negative")
    total = sum(healthy.values())
    left = max(0, budget_ms - spent_ms)
    if total <= left:
        return dict(healthy)
    return {node: h * left // total for node, h in healthy.items()}


def earns_uptime(models: Sequence[Mapping[str, object]]) -> bool:
    """Whether a node hosting ``models`` (its registration's, as stored) earns uptime
    rewards: at least one model not ``simulated``."""
    return any(isinstance(m, Mapping) and not m.get("simulated") for m in models)


def due_period(now_s: float, period_s: int, grace_s: float) -> int:
    """The start (Unix seconds) of the latest period that ended at least ``grace_s`` ago."""
    if period_s <= 0 or grace_s < 0:
        raise ValueError("a period is positive and the grace not negative")
    return math.floor((now_s - grace_s) / period_s) * period_s - period_s


@dataclass(frozen=True)
class ModelStats:
    """One node's requests for one model in a period: answered ``ok`` or ``failed``,
    and over the ``ok`` ones the completion tokens and the summed latency in ms."""

    ok: int = 0
    failed: int = 0
    tokens: int = 0
    latency_ms: float = 0.0

    @property
    def speed(self) -> float | None:
        """Completion tokens per second of latency, or ``None`` without a measure."""
        if self.ok <= 0 or self.latency_ms <= 0:
            return None
        return self.tokens / (self.latency_ms / 1000.0)


def success_milli(ok: int, failed: int) -> int:
    """``(ok + 1) / (ok + failed + 1)`` in thousandths, rounded down."""
    if ok < 0 or failed < 0:
        raise ValueError("request counts cannot be negative")
    return (ok + 1) * MILLI // (ok + failed + 1)


def peer_speeds(stats: Mapping[str, Mapping[str, ModelStats]]) -> dict[str, float]:
    """Per model: the median speed of the nodes that served it, where two or more did."""
    by_model: dict[str, list[float]] = {}
    for per_model in stats.values():
        for model, s in per_model.items():
            speed = s.speed
            if speed is not None:
                by_model.setdefault(model, []).append(speed)
    return {m: statistics.median(v) for m, v in by_model.items() if len(v) >= 2}


def peer_stats(
    stats: Mapping[str, Mapping[str, ModelStats]], excluded: Collection[str]
) -> dict[str, Mapping[str, ModelStats]]:
    """The period's request statistics of the nodes whose speeds set the medians: all but
    ``excluded``, the nodes whose uptime earns their operator nothing (every model
    simulated, or held: caught by a canary, or an operator's other node). Found 2026-12-05
    (attack30): an operator's sim nodes of a model, answering made-up text at once (they
    cost it nothing: they earn no uptime), set the median, and every honest node of the
    model was judged slow against it (performance 500: half its reward)."""
    return {node: s for node, s in stats.items() if node not in excluded}


def performance_milli(node: Mapping[str, ModelStats], medians: Mapping[str, float]) -> int:
    """The node's speed against its peers', in thousandths within [500, 1500]."""
    weight = 0
    total = 0
    for model, s in node.items():
        if s.ok <= 0:
            continue
        speed, median = s.speed, medians.get(model)
        if speed is None or not median:
            ratio = MILLI
        else:
            ratio = int(speed / median * MILLI)
            ratio = min(PERF_MAX_MILLI, max(PERF_MIN_MILLI, ratio))
        weight += s.ok
        total += ratio * s.ok
    return total // weight if weight else MILLI


def reward_amount(rate: int, healthy_ms: int, performance: int, success: int) -> int:
    """``rate × healthy_ms / 1 h × performance × success`` (factors in thousandths), floored."""
    if rate < 0 or healthy_ms < 0 or performance < 0 or success < 0:
        raise ValueError("a reward's inputs cannot be negative")
    return rate * healthy_ms * performance * success // (_MS_PER_HOUR * MILLI * MILLI)


@dataclass(frozen=True)
class NodePeriod:
    """What the registry knows of one node for a period."""

    node_id: str
    healthy_ms: int
    stats: Mapping[str, ModelStats]


@dataclass(frozen=True)
class Reward:
    node_id: str
    healthy_ms: int
    performance: int  # thousandths
    success: int  # thousandths
    amount: int  # micro-NetworkTokens


def rewards(
    nodes: Sequence[NodePeriod],
    *,
    rate: int,
    period_ms: int,
    peers: Mapping[str, Mapping[str, ModelStats]] | None = None,
) -> list[Reward]:
    """Every node's reward for one period.

    ``peers`` are the period's request statistics of every node (the median speeds are
    taken over them); by default those of ``nodes``.
    """
    medians = peer_speeds(peers if peers is not None else {n.node_id: n.stats for n in nodes})
    out: list[Reward] = []
    for n in nodes:
        healthy = max(0, min(n.healthy_ms, period_ms))
        ok = sum(s.ok for s in n.stats.values())
        failed = sum(s.failed for s in n.stats.values())
        perf, succ = performance_milli(n.stats, medians), success_milli(ok, failed)
        out.append(Reward(n.node_id, healthy, perf, succ, reward_amount(rate, healthy, perf, succ)))
    return out
