"""The gateway's one routing state: a :class:`~LLM_Mesh.core.balancer.Router` kept in step
with the node table, on the runtime's monotonic clock.

The node table says who is *alive* (registration, heartbeats, state, active
checks); the router decides *who serves* (load, peak-EWMA latency, success
EWMA, ejections, slow start). :class:`Routing` is the only bridge:

    registration      -> ``upsert_node`` (every hosted model, the loaded ones, each
                         model's ``load_time_s`` as its cold start, region, capacity)
    heartbeat         -> ``heartbeat`` (reported load, loaded models and load times
                         from ``loaded_models`` / the extra ``models`` list, uptime,
                         the extra ``service_s``: the node's measured time per request)
    state / check /   -> ``set_routable`` (ONLINE, fresh heartbeat, check not failed)
      expiry sweep
    ``DELETE``        -> ``remove_node`` (with the time: the node's ejection and its
                         statistics wait for it should it register again,
                         ``core/left_stats.py``; each replica keeps its own)

A heartbeat expiring between sweeps is caught at pick time: a chosen node the
table no longer finds healthy is taken out and the pick repeats. Waiters for a
free node (the opt-in bounded wait) are woken whenever the router's picture
changes for the better for their model (an attempt ends on a node serving it, such a node
registers or heartbeats).

Warm and cold: a node is routed for every model it hosts, loaded or not; a
model it has not loaded costs its reported load time more (else the router's
default cold start), so warm nodes win while they have room and a cold one
serves when none does. A success marks the model loaded at once (the node had
to load it to answer); the next heartbeat says what is loaded after all.

A node's refusal (a 4xx, ``Outcome.REJECTED``) ends its attempt saying nothing about the
node; when another node then takes the request, :meth:`Routing.blame` counts that refusal
as the node's failure after all (the router's success EWMA and outlier ejection, the
node's failure count; ``on_blame`` hears it).

Demand (``GET /mesh/demand``) is counted here too: attempts in flight per model
(:class:`~LLM_Mesh.registry.demand.DemandTracker`, one increment each way), and per node
for the stream floor (:class:`~LLM_Mesh.core.stream_guard.SharedTime`: the time a node's
attempts in flight shared it, ``Routing.shares``, with the node's declared slots and queue
and the requests other live replicas published in flight there: ``Routing.others``, read
as an attempt begins and at every replica beat, :meth:`Routing.refresh_shares`). Every
attempt ends in :meth:`Routing.finish`; ``on_finish`` (the gateway's metrics, when on)
hears each one: node, outcome, and whether the router ejected the node for it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from LLM_Mesh.core.balancer import Attempt, Decision, Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.client_retry import retry_estimate
from LLM_Mesh.core.liveness import heartbeat_age
from LLM_Mesh.core.priority import reported_keyed_at
from LLM_Mesh.core.prompt_keeping import may_keep_prompts
from LLM_Mesh.core.retry import RetryBudget
from LLM_Mesh.core.route_types import BUSY
from LLM_Mesh.core.schemas import Heartbeat, NodeView
from LLM_Mesh.core.scoring import RouteRequest, node_cost, permits
from LLM_Mesh.core.slot_wait import MAX_SEND_WAITERS
from LLM_Mesh.core.stream_guard import SharedTime
from LLM_Mesh.core.strict_json import finite_number
from LLM_Mesh.core.wait_places import WaitPlace, WaitPlaces
from LLM_Mesh.core.wake_on_change import WakeOnChange
from LLM_Mesh.registry.demand import DemandTracker, others_in_flight_at
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable, cold_starts_ms, loaded_models

_NONE: frozenset[str] = frozenset()
_KEEPERS_MAX = 4096  # models whose prompt keepers are kept made (``Routing.keepers_for``)

__all__ = ["Routing", "WaitPlace"]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# not counted as a node's request when they end: a client gone, the node busy, a refusal
# (counted as a failure only if it is blamed)
_UNCOUNTED = frozenset({Outcome.CANCELLED, Outcome.REJECTED}) | BUSY


def _service_s(hb: Heartbeat) -> float | None:
    """The heartbeat's extra ``service_s`` (seconds per request), if a plain number."""
    return finite_number((hb.model_extra or {}).get("service_s"))


class Routing:
    """One per gateway process (in the runtime); see the module docstring."""

    def __init__(
        self,
        table: NodeTable,
        clock: Callable[[], float],
        *,
        policy: RoutingPolicy | None = None,
        rng: random.Random | None = None,
        retry_budget: RetryBudget | None = None,
        failover_budget: RetryBudget | None = None,
    ) -> None:
        self.table = table
        self.clock = clock
        self.router = Router(policy, rng)
        # retries after a node may have done work (timeout, 5xx): 20 % of requests + 10/s
        self.retry_budget = retry_budget or RetryBudget(0.2, 10.0)
        # failovers after the node did nothing (connect refused, 429): 100 % + 50/s
        self.failover_budget = failover_budget or RetryBudget(1.0, 50.0)
        self.demand = DemandTracker(clock)
        self.shares = SharedTime()  # attempts in flight per node, over time: the stream floor
        # the demand other live replicas published (``ReplicaBeat.others_demand``); None: alone
        self.others: Callable[[], Sequence[dict[str, Any]]] | None = None
        # (node id, outcome, ejected) of every attempt that ends; None: nobody listens
        self.on_finish: Callable[[str, Outcome, bool], None] | None = None
        # (node id, ejected) of every refusal counted as a failure (blame); None: nobody listens
        self.on_blame: Callable[[str, bool], None] | None = None
        self._waiters = 0
        # model -> the futures its waiters sleep on (one a look; a change resolves them all:
        # core/wake_on_change.py)
        self._wake: WakeOnChange[asyncio.Future[None]] = WakeOnChange()
        # requests in the send stage's opt-in wait, at most MAX_SEND_WAITERS at once,
        # shared among API keys by push-out (core/slot_wait.place_for, core/wait_places.py)
        self.send_places = WaitPlaces(
            MAX_SEND_WAITERS, "API key", "as many requests as may wait here wait already"
        )
        # node id -> its models, of the nodes that may keep prompts (core/prompt_keeping.py):
        # routed only requests that opt in (``allow_prompt_keeping``, registry/send.py)
        self.prompt_keepers: dict[str, frozenset[str]] = {}
        # model -> those of them serving it (``keepers_for``), made again after a change
        self._keepers: dict[str, frozenset[str]] = {}
        # node id -> models it is quarantined for (a failed canary, registry/quality.py):
        # the router does not route those models to it
        self.quarantined: dict[str, frozenset[str]] = {}

    @property
    def send_waiters(self) -> int:
        """Requests in the send stage's opt-in wait now."""
        return self.send_places.waiting

    @property
    def max_send_waiters(self) -> int:
        """The most requests in the send stage's opt-in wait at once (core/slot_wait.py)."""
        return self.send_places.cap

    @max_send_waiters.setter
    def max_send_waiters(self, cap: int) -> None:
        self.send_places.cap = cap

    @property
    def key_waiters(self) -> dict[str, dict[WaitPlace, None]]:
        """Of those, per API key id, oldest first."""
        return self.send_places.by_holder

    def take_place(self, key: str) -> WaitPlace | str:
        """A place in the send stage's opt-in wait for a request of API key ``key``
        (:meth:`WaitPlaces.take <LLM_Mesh.core.wait_places.WaitPlaces.take>`: at most
        ``max_send_waiters`` in all; when none is free, the newest place of the key holding
        the most, if it holds two more than ``key``, whose waiter is then told by
        :attr:`WaitPlace.out` and woken): the place (give it back with :meth:`leave_place`),
        else why there is none (the request is answered as without a wait)."""
        return self.send_places.take(key)

    def leave_place(self, place: WaitPlace) -> None:
        """Give back a place :meth:`take_place` gave (once; a place pushed out is gone)."""
        self.send_places.leave(place)

    # -- keeping the router in step with the table -------------------------------
    def upsert(self, entry: NodeEntry) -> None:
        """A registration (or a stored node loaded at start-up)."""
        out = self.quarantined.get(entry.node_id, frozenset())
        engines = (m.engine for m in entry.models.values())
        keeps = may_keep_prompts(entry.keeps_no_prompts, engines)
        self._keeper(entry.node_id, frozenset(entry.models) if keeps else None)
        self.router.upsert_node(
            entry.node_id, [m for m in entry.models if m not in out], now=self.clock(),
            loaded=loaded_models(entry),
            region=entry.region, max_concurrency=entry.max_concurrency,
            max_queue=entry.max_queue, model_cold_start_ms=cold_starts_ms(entry),
            uptime=1.0 if entry.uptime is None else entry.uptime,
        )  # fmt: skip
        self.sync(entry.node_id)
        self._changed(entry.models)

    def heartbeat(self, node_id: str, hb: Heartbeat) -> None:
        """After :meth:`NodeTable.heartbeat` (which took in the loaded set and load times)."""
        entry = self.table.get(node_id)
        if entry is None:
            return
        if self.router.node(node_id) is None:
            self.upsert(entry)
        now = self.clock()
        self.router.heartbeat(
            node_id, now, in_flight=hb.in_flight, queued=hb.queued,
            loaded_models=loaded_models(entry), uptime=entry.uptime,
            model_cold_start_ms=cold_starts_ms(entry), service_s=_service_s(hb),
            keyed_at=reported_keyed_at(hb.keyed_age_s, now),
        )  # fmt: skip
        self.sync(node_id)
        self._changed(entry.models)

    def heard(self, node_id: str, at: float, keyed_at: float | None = None) -> None:
        """Another replica got the node's heartbeat (``node_sync.py``): fresh, liveness
        re-checked; its load report stays with the replica that got it (the load this
        replica held from before is dropped: ``Router.heard``), but for its last keyed
        request (``keyed_at``, this clock), which the store carries: every replica counts
        the places the node keeps for keyed ones (``route_pools.heard_keyed``)."""
        opened = self.router.heard(node_id, at, keyed_at)
        entry = self.table.get(node_id)
        routable = entry is not None and self.table.healthy(entry)
        st = self.router.node(node_id)
        models = () if entry is None else entry.models
        if st is not None and st.routable != routable:
            self.sync(node_id)
            self._changed(models)
        elif opened:
            self._changed(models)

    def sync(self, node_id: str) -> None:
        """Mirror the table's liveness of ``node_id`` into the router; a node the table no
        longer holds leaves routing as by :meth:`remove` (found 2026-12-06, ``stall35``: its
        word that it may keep prompts stayed, in ``prompt_keepers`` and the router's pools)."""
        entry = self.table.get(node_id)
        if entry is None:
            self.remove(node_id)
            return
        self.router.set_routable(node_id, self.table.healthy(entry))

    def sync_all(self) -> None:
        for entry in self.table.entries():
            if self.router.node(entry.node_id) is None:
                self.upsert(entry)
            else:
                self.sync(entry.node_id)

    def set_quarantined(self, node_id: str, models: frozenset[str]) -> None:
        """Route none of ``models`` to ``node_id`` from now on (empty: lift it)."""
        if self.quarantined.get(node_id, frozenset()) == models:
            return
        if models:
            self.quarantined[node_id] = models
        else:
            self.quarantined.pop(node_id, None)
        entry = self.table.get(node_id)
        if entry is not None and self.router.node(node_id) is not None:
            self.upsert(entry)

    def remove(self, node_id: str) -> None:
        """The node said goodbye (``DELETE``): out of routing, but neither an ejection it
        serves nor its success and latency statistics are dropped: they wait for it should it
        register again (found 2026-12-05: a goodbye and a registration ended the ejection, and
        gave a node judged poorly a newcomer's statistics: ``core/left_stats.py``)."""
        self.router.remove_node(node_id, self.clock())
        self._keeper(node_id, None)

    def _keeper(self, node_id: str, models: frozenset[str] | None) -> None:
        """``node_id`` may keep prompts for ``models`` (None: it keeps none, or left)."""
        keepers = self.prompt_keepers
        if keepers.get(node_id) == models:
            return
        if models is None:
            del keepers[node_id]
        else:
            keepers[node_id] = models
        self._keepers.clear()
        self.router.keeps_prompts(node_id, models)  # its slots held out (``slots``)

    def keepers_for(self, model: str, allowed: bool = False) -> frozenset[str]:
        """The nodes serving ``model`` that may keep prompts (``prompt_keepers``), which a
        request routes around; none when it is ``allowed`` them (it opted in)."""
        if allowed or not self.prompt_keepers:
            return _NONE
        hit = self._keepers.get(model)
        if hit is None:  # once per model and change, not per attempt (review33c: 1.4 ms a
            # call with 10,000 such nodes, each request's admission and every attempt)
            if len(self._keepers) >= _KEEPERS_MAX:
                self._keepers.clear()
            hit = frozenset(n for n, ms in self.prompt_keepers.items() if model in ms)
            self._keepers[model] = hit
        return hit

    def up_among(self, nodes: Iterable[str]) -> int:
        """How many of ``nodes`` are up (routable by the table) now."""
        now, alive = self.clock(), self.table.alive
        return sum(alive(n, now) for n in nodes)

    # -- decisions ------------------------------------------------------------------
    def pick(self, req: RouteRequest) -> Decision:
        """The router's choice, re-checked against the table's liveness (lazy expiry)."""
        pick, alive, clock = self.router.pick, self.table.alive, self.clock
        for _ in range(64):
            now = clock()
            d = pick(req, now)
            node_id = d.node_id
            if node_id is None or alive(node_id, now):
                return d
            self.sync(node_id)
        return Decision(Verdict.NO_NODE)  # pragma: no cover - 64 dead picks in a row

    def retry_estimate(self, req: RouteRequest, tried: Iterable[str]) -> int | None:
        """A 502's ``Retry-After`` (``core/client_retry.retry_estimate``): the pick for ``req``
        (the request without the nodes it ``tried``) and :meth:`back_s` of those."""
        return retry_estimate(self.pick(req), self.back_s(tried, req.models))

    def back_s(self, node_ids: Iterable[str], models: Iterable[str]) -> float | None:
        """Seconds until the soonest of ``node_ids`` (nodes that failed a request) is worth a
        retry for one of ``models``: the end of its ejection or rest (``Router.back_in``: its
        rest where it is still routed one of them) or of its own ``Retry-After``; only a node
        still registered, live, routable and routed the model (not after a goodbye, a
        revocation, going offline or a canary's quarantine of it); ``None``: none is."""
        now, router, wanted = self.clock(), self.router, frozenset(models)
        soonest: float | None = None
        for nid in node_ids:
            st = router.node(nid)
            if st is None or not st.routable or wanted.isdisjoint(st.models):
                continue
            if not self.table.alive(nid, now):
                continue
            back = max(router.back_in(nid, wanted & st.models, now), st.busy_until - now)
            soonest = back if soonest is None else min(soonest, back)
        return soonest

    def models_within(
        self, models: Iterable[str], route: Callable[[str], RouteRequest]
    ) -> list[str]:
        """Those of ``models`` that a healthy node routed them hosts which ``route(model)``'s
        constraints permit (regions, allowed, denied): the ones that would answer under them
        (found 2026-12-05: a 503's "with fallback=True X answers" named a model whose only
        node was in an avoided region too; and one whose only node was quarantined for it)."""
        table, node, now, keepers = self.table, self.router.node, self.clock(), self.prompt_keepers
        out = []
        for model in models:
            req = route(model)
            for entry in table.healthy_entries_for(model, now):
                st = node(entry.node_id)
                if st is None or model not in st.models or not permits(req, st):
                    continue
                # nor one that may keep prompts, unless it opted in (keeppick34: no longer in
                # its deny_nodes, the router holds them out itself)
                if req.keepers or model not in keepers.get(entry.node_id, _NONE):
                    out.append(model)
                    break
        return out

    def slots(self, model: str, allowed: bool = False) -> int:
        """``Router.slots``: the declared slots of the model's nodes, less the idle slots of
        its full nodes, less the slots of the nodes that may keep prompts unless ``allowed``
        (the request opted in: ``prompt_keepers``, told to the router by ``_keeper``), each
        count kept by the router's pools as nodes change, so an anonymous request's
        admission reads them in O(1) (``access.AnonymousLast``; before session 34, one pass
        over the model's nodes each). Found 2026-12-06 (review33c): a node that keeps
        prompts, sent no request that did not opt in, lent its slots (2^31 declared) to the
        anonymous share, which then held every slot of the nodes those requests may use.
        Of those, what the nodes have shown they serve here and, with Redis, at the other
        replicas (``Router.slots``, ``registry/redis_shown.py``)."""
        return self.router.slots(model, not allowed)

    def keyed_at(self, model: str, allowed: bool = False) -> float | None:
        """When the nodes whose slots serve ``model`` (healthy, routable, routed the model,
        not ejected from its pool, and, unless ``allowed`` (the request opted in), not one
        that may keep prompts for it: those ``slots`` counts) last had a keyed request (the
        latest ``NodeStats.keyed_at``: one this router sent, or the node's own word through
        any replica's heartbeat; None: none known). A scan of those nodes: read only for a
        model whose anonymous share turns on keyed demand (a one-slot model, ``access.py``),
        so a node's word moves only a slot it holds (found 2026-12-05, attack31: a node a
        canary quarantined for the model, still listing it, kept an honest node's slot from
        every anonymous request; found 2026-12-06, review35: so did a node that may keep
        prompts, from every request that did not opt in)."""
        latest: float | None = None
        ejected = self.router.ejected_for
        keepers: dict[str, frozenset[str]] = {} if allowed else self.prompt_keepers
        for entry in self.table.healthy_entries_for(model):
            st = self.router.node(entry.node_id)
            if st is None or not st.routable or model not in st.models:
                continue
            if ejected(st.node_id, model):  # kept where its pool cannot spare it: counted
                continue
            if keepers and model in keepers.get(st.node_id, _NONE):  # held out (review35)
                continue
            at = st.keyed_at
            if at is not None and (latest is None or at > latest):
                latest = at
        return latest

    def begin(self, node_id: str, model: str, keyed: bool = False) -> Attempt:
        self.demand.begin(model)
        now = self.clock()
        entry = self.table.get(node_id)
        slots = capacity = 1
        if entry is not None:
            slots = max(1, entry.max_concurrency)
            capacity = slots + max(0, entry.max_queue)
        self.shares.begin(node_id, now, slots, capacity, self._others_at(node_id, entry))
        return self.router.begin(node_id, model, now, keyed)

    def others_at(self, node_id: str) -> int:
        """The requests other live replicas published in flight at ``node_id`` (0: alone)."""
        return self._others_at(node_id, self.table.get(node_id))

    def _others_at(self, node_id: str, entry: NodeEntry | None) -> int:
        if self.others is None:
            return 0
        return others_in_flight_at(self.others(), node_id, entry.models if entry else ())

    def refresh_shares(self) -> None:
        """After a replica beat: the other replicas' counts on the nodes this one has
        requests in flight on, for the stream floor."""
        now = self.clock()
        for node_id in self.shares.nodes():
            self.shares.set_others(node_id, self.others_at(node_id), now)

    def first_token(self, att: Attempt) -> None:
        self.router.first_token(att, self.clock())

    def finish(
        self,
        att: Attempt,
        outcome: Outcome,
        *,
        completion_tokens: int = 0,
        ttft_ms: float | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """End an attempt: feed the router, count it, wake waiters.

        ``retry_after_s``: a 429's ``Retry-After`` (see ``Router.finish``).
        """
        if att.done:
            return
        self.demand.end(att.model)
        now = self.clock()
        self.shares.end(att.node_id, now)
        ejected = self.router.finish(
            att, now, outcome, completion_tokens=completion_tokens, ttft_ms=ttft_ms,
            retry_after_s=retry_after_s,
        )  # fmt: skip
        if self.on_finish is not None:
            self.on_finish(att.node_id, outcome, ejected)
        if outcome is Outcome.SUCCESS:
            self.table.mark_loaded(att.node_id, att.model)
        if outcome not in _UNCOUNTED:
            self.table.count(att.node_id, ok=outcome is Outcome.SUCCESS, tokens=completion_tokens)
        if outcome is Outcome.SUCCESS or outcome in BUSY:  # answered or refused: uptime credit
            self.table.tally(att.node_id, answered=outcome is Outcome.SUCCESS, now=now)
        if self._waiters:  # a slot of the node freed: for each model it serves
            entry = self.table.get(att.node_id)
            self._changed((att.model,) if entry is None else entry.models)

    def blame(self, att: Attempt) -> None:
        """The finished attempt ``att`` (a refusal another node's answer contradicted) counts
        as its node's failure: like a server error for outlier detection (``Router.fault``)
        and the node's failure count."""
        ejected = self.router.fault(att, self.clock())
        if self.on_blame is not None:
            self.on_blame(att.node_id, ejected)
        self.table.count(att.node_id, ok=False)
        self.table.tally(att.node_id, answered=False)  # a refusal after all (uptime credit)

    # -- the opt-in bounded wait ------------------------------------------------------
    @property
    def waiters(self) -> int:
        """Requests sleeping in :meth:`wait_change` now."""
        return self._waiters

    def wake(self, model: str) -> None:
        """Something outside the router freed room for ``model`` (an anonymous request of
        this gateway's share ended, ``access.AnonymousLast``): its waiters look again."""
        if self._waiters:
            self._changed((model,))

    def _changed(self, models: Iterable[str]) -> None:
        """Wake the waiters of ``models`` (those of other models sleep on: nothing of theirs
        changed; ``core/wake_on_change.py``)."""
        for fut in self._wake.changed(models):
            if not fut.done():
                fut.set_result(None)

    async def wait_change(
        self, timeout_s: float, model: str, place: WaitPlace | None = None
    ) -> bool:
        """Sleep until routing changes for ``model`` or ``timeout_s`` passes (whichever is
        first), or ``place`` (the sleeper's place in a wait) is pushed out: whether it was
        woken (by a change or the push-out) before its time."""
        if timeout_s <= 0 or (place is not None and place.out):
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wake.sleep(model, fut)
        if place is not None:
            place.wake = partial(_resolve, fut)
        self._waiters += 1
        try:
            await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiters -= 1
            if place is not None:
                place.wake = None
            self._wake.leave(model, fut)
        return True

    # -- views ----------------------------------------------------------------------------
    def view(self, entry: NodeEntry, now: float) -> NodeView:
        """``GET /mesh/nodes``: the registration, liveness and the router's view of the node."""
        st = self.router.node(entry.node_id)
        extra: dict[str, Any] = {"uptime": entry.uptime, "continuation": entry.continuation}
        extra["simulated"] = entry.simulated
        in_flight = entry.reported_in_flight
        health = 0.0 if entry.check_failed else 1.0
        latency = ttft = None
        if st is not None:
            out = self.router.outliers
            ok = st.success.value
            health = 0.0 if entry.check_failed else (1.0 if ok is None else ok)
            # shown as measured (as latency is), not decayed toward 0 while the node is idle
            # (found 2026-12-07, newuser39: `status` said "ttft 20 ms" beside "total 3773 ms"
            # of a node answering in ~1 s, minutes after its last request); routing decays them
            latency, ttft = st.latency.value, st.ttft.peak
            in_flight = max(in_flight, st.in_flight)
            weight = out.weight(entry.node_id, now)
            model = next(iter(sorted(st.models)), None)
            sp = self.router.policy.scoring
            cost = None
            if model is not None and weight > 0:
                cost = node_cost(st, model, sp.default_tokens, now, sp, weight)
            per_tok = st.per_token.peak
            ejected_for = self.router.ejected_for
            extra.update(
                routable=st.routable, ejected=out.is_ejected(entry.node_id),
                ejected_models=[m for m in sorted(st.models) if ejected_for(entry.node_id, m)],
                ejections=out.ejection_count(entry.node_id), slow_start_weight=round(weight, 4),
                load=st.load, gateway_in_flight=st.in_flight,
                per_token_ms_ewma=None if per_tok is None else round(per_tok, 3),
                cost_ms=None if cost is None else round(cost, 3),
            )  # fmt: skip
        return NodeView(
            node_id=entry.node_id, url=entry.url, region=entry.region, state=entry.state,
            healthy=self.table.healthy(entry, now), models=list(entry.models.values()),
            in_flight=in_flight, queued=entry.reported_queued,
            max_concurrency=entry.max_concurrency, max_queue=entry.max_queue,
            last_heartbeat_age_s=(age := heartbeat_age(entry.last_heartbeat, now)),
            silent=age is None or age >= self.table.expiry_s,  # as the expiry sweep reads it
            health_score=round(health, 4),
            latency_ms_ewma=None if latency is None else round(latency, 3),
            ttft_ms_ewma=None if ttft is None else round(ttft, 3),
            requests=entry.requests, failures=entry.failures, hardware=entry.hardware,
            keeps_no_prompts=entry.keeps_no_prompts, revoked=entry.revoked, **extra,
        )  # fmt: skip

    def views(self) -> list[NodeView]:
        now = self.clock()
        self.router.tick(now)
        return [self.view(e, now) for e in sorted(self.table.entries(), key=lambda e: e.node_id)]
