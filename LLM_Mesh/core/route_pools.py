"""The router's index: per model, its routable nodes by where a pick may find them.

Split from ``core/balancer.py`` (which decides; this keeps the sets it draws from). For
each model a :class:`Pool` holds the current ``NodeStats`` objects (not their ids) of its
routable, non-ejected nodes in three sets: *open* (room for any request), *kept* (room
only in the places the node keeps for keyed requests: full for anonymous ones, the node's
own rule, :func:`~LLM_Mesh.core.priority.admits`, as the gateway sees it: :func:`band`)
and *full* (saturated, or held by a 503); ejected ones are only counted. An anonymous
request draws from the open set only, a keyed one from the kept set too when no node is
open. Each set is kept twice over: the nodes that keep no prompts for the model, and those
that may (``Pools.keeps``: ``open_keep``, ``kept_keep``, ``full_keep``), drawn only by a
request that opted in (``core/route_keep.py``; found 2026-12-06, keeppick34). The open and kept sets are :class:`IndexedRows`: each node's scoring inputs for
the model in one flat row (:func:`~LLM_Mesh.core.scoring.node_row`), written when the
node enters and again after every update of what the row holds (:meth:`Pools.rewrite`).
Each pool also keeps the anonymous share's slot counts (``Pool.declared``, ``idle``,
``held``, ``held_idle``, and what its nodes have shown they serve: ``shown``, ``held_shown``,
:func:`shown_slots`) and how many nodes that may keep prompts it holds open or shut
(``held_open``, ``held_shut``), changed where a node enters or leaves one of its sets
(:meth:`Pools.move`), where its requests in flight, ``anon_closed`` or ``shown`` change
while it stays (:meth:`Pools.recount`, from :meth:`Pools.rewrite`) and where the nodes that may
keep prompts change (:meth:`Pools.set_keeps`): read in O(1) per anonymous request
(tests/core/test_route_pools_counts.py compares them with a full pass).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from LLM_Mesh.core.indexed_set import IndexedRows, IndexedSet
from LLM_Mesh.core.outlier import may_eject
from LLM_Mesh.core.priority import keeps_places, kept_places
from LLM_Mesh.core.scoring import ROW, NodeStats, node_row

__all__ = ["EJECTED", "FULL", "KEPT", "NONE", "OPEN", "Pool", "Pools", "RowPart",
           "anonymous_limit", "answered", "band", "heard_keyed", "idle_slots", "shown_slots", "unspared"]  # fmt: skip

NONE, OPEN, KEPT, FULL, EJECTED = 0, 1, 2, 3, 4
_NO_MODELS: frozenset[str] = frozenset()
RowPart = Callable[["array[float]", int, NodeStats, str], None]  # write_row or a part of it


def anonymous_limit(st: NodeStats, now: float) -> int:
    """The load from which ``st`` may be full for anonymous requests: its capacity less
    the places it keeps for keyed ones (:func:`~LLM_Mesh.core.priority.kept_places`, the
    node's own rule) while a keyed request went there in the last
    :data:`~LLM_Mesh.core.priority.KEYED_SEEN_S` (``st.keyed_at``: this router's own
    keyed requests there, or the node's report, :func:`heard_keyed`), else its capacity."""
    if keeps_places(st.keyed_at, now):
        return st.capacity - kept_places(st.max_queue)
    return st.capacity


def heard_keyed(st: NodeStats, keyed_at: float | None) -> bool:
    """The node's own word on its last keyed request (``Heartbeat.keyed_age_s`` as
    ``core/priority.reported_keyed_at`` reads it, on the router's clock), from its heartbeat
    here or at another replica: ``st.keyed_at`` becomes the later of it and this router's
    own last keyed request there, so a replica that sent the node none still counts the
    places it keeps (found 2026-12-05: each replica knew only its own). ``None`` (an older
    node, or none lately) leaves it. ``True`` when it moved."""
    if keyed_at is None or (st.keyed_at is not None and keyed_at <= st.keyed_at):
        return False
    st.keyed_at = keyed_at
    return True


def band(st: NodeStats) -> int:
    """``OPEN``, ``KEPT`` or ``FULL`` (routable and ejection aside): full at its capacity
    (any request); kept once its anonymous requests waiting, as the gateway counts them,
    hold all the places not kept (the node's rule, ``core/priority.admits``: keyed ones
    run first, so the waiting are the anonymous ones, at most all but the running), or
    an anonymous request's 429 closed it to them (``anon_closed``, until a heartbeat)."""
    if st.load >= st.capacity:
        return FULL
    if st.anon_closed:
        return KEPT
    waiting = min(st.anon_in_flight + st.max_concurrency, st.in_flight)  # + the slots
    return KEPT if waiting >= st.open_below else OPEN


def idle_slots(st: NodeStats, where: int) -> int:
    """What ``st`` at ``where`` adds to its pools' idle count (:meth:`Pool.idle_full_slots`):
    the slots no request of this router holds there if it is full (``FULL``: saturated, a
    503) or closed to anonymous requests by a refusal (``KEPT`` and ``anon_closed``), else
    0."""
    if where == FULL or (where == KEPT and st.anon_closed):
        return max(0, st.max_concurrency - st.in_flight)
    return 0


def shown_slots(st: NodeStats, where: int) -> int:
    """What ``st`` at ``where`` adds to its pools' shown count (:meth:`Pool.shown_slots`):
    of the slots the share counts of it (its ``max_concurrency`` less :func:`idle_slots`),
    those it has shown it serves: ``st.shown`` (the most of this router's requests it held at
    once when one was answered, in the last one to two windows: core/shown_window.py), or, while this router holds ``n`` requests there, at least
    ``2n + 1``, so that the share grows into a node that takes what it is sent (at share 0.75
    a cap must count a third more slots than the requests it lets on). Found 2026-12-06
    (share35): an open node's declared slots, counted whole, lent the share every honest
    slot while the router sent it nothing (a phantom, slower than they as measured). With
    other replicas' views (redisshare36): ``shown`` is the most any replica saw, and ``n``
    counts every replica's requests there, so a node counts as if one replica had sent it
    all (found 2026-12-06, trust37: their sum counted a phantom that answered one request
    at each of R replicas R slots)."""
    counted = st.max_concurrency - idle_slots(st, where)
    n = st.in_flight + st.held_elsewhere  # other replicas' requests there too (trust37)
    room = max(st.shown, st.shown_elsewhere)  # the most any replica saw (redisshare36)
    if n > 0 and 2 * n + 1 > room:
        room = 2 * n + 1
    return counted if room >= counted else room


def answered(st: NodeStats) -> bool:
    """``st`` answered here, or at another replica (``core/fleet_shown.py``): the share
    counts its shown slots, not its declared ones (``Router.slots``)."""
    return st.answered or st.shown_elsewhere >= 0


class Pool:
    """One model's routable nodes (see the module docstring), and its slot counts, kept as
    its nodes come, go and change (:class:`Pools`), so the anonymous share reads them in
    O(1): ``declared`` (the ``max_concurrency`` of its open, kept and full nodes), ``idle``
    (their :func:`idle_slots`), ``held`` and ``held_idle`` (the same of the nodes that may
    keep prompts for the model, ``Pools.keeps``), ``shown`` and ``held_shown`` (their
    :func:`shown_slots`, all and those that may keep prompts); ``held_open`` and ``held_shut``: how many
    of those nodes are open, and kept or full (``Router.pool_counts``: found 2026-12-06,
    review34, anon34 asked the router at each anonymous request's admission instead)."""

    __slots__ = ("answered", "declared", "ejected", "full", "full_keep", "held", "held_idle",
                 "held_open", "held_shown", "held_shut", "idle", "kept", "kept_keep", "open",
                 "open_keep", "shown")  # fmt: skip

    def __init__(self) -> None:
        # the nodes that keep no prompts for the model (every request's)...
        self.open: IndexedRows[NodeStats] = IndexedRows(ROW)
        self.kept: IndexedRows[NodeStats] = IndexedRows(ROW)
        self.full: IndexedSet[NodeStats] = IndexedSet()
        # ...and those that may (``Pools.keeps``): only an opted-in request's (keeppick34)
        self.open_keep: IndexedRows[NodeStats] = IndexedRows(ROW)
        self.kept_keep: IndexedRows[NodeStats] = IndexedRows(ROW)
        self.full_keep: IndexedSet[NodeStats] = IndexedSet()
        self.ejected = 0
        self.declared = self.idle = self.held = self.held_idle = 0
        self.held_open = self.held_shut = 0
        self.shown = self.held_shown = 0
        self.answered = 0  # of its nodes, those answered here (``st.answered``, shown_window.py)

    @property
    def size(self) -> int:
        n = len(self.open) + len(self.kept) + len(self.full) + self.ejected
        return n + len(self.open_keep) + len(self.kept_keep) + len(self.full_keep)

    def put(self, st: NodeStats, m: str, where: int, keeper: bool) -> None:
        """``st`` enters its set at ``where`` (``OPEN``, ``KEPT``, ``FULL``) for model ``m``:
        the keepers' sets if ``keeper`` (it may keep prompts for ``m``)."""
        if where == FULL:
            (self.full_keep if keeper else self.full).add(st)
        else:
            bag = (self.open_keep if keeper else self.open) if where == OPEN else (
                self.kept_keep if keeper else self.kept)  # fmt: skip
            bag.add(st, node_row(st, m))

    def take(self, st: NodeStats, where: int, keeper: bool) -> None:
        """``st`` leaves its set at ``where`` (``OPEN``, ``KEPT``, ``FULL``)."""
        if where == OPEN:
            (self.open_keep if keeper else self.open).discard(st)
        elif where == KEPT:
            (self.kept_keep if keeper else self.kept).discard(st)
        else:
            (self.full_keep if keeper else self.full).discard(st)

    def declared_slots(self) -> int:
        """The slots (``max_concurrency``) of the pool's nodes, as they declare them."""
        return self.declared

    def idle_full_slots(self) -> int:
        """Of :meth:`declared_slots`, the ones no request of this router holds on nodes full
        by their own word (saturated, a 503) or closed to anonymous requests by a refusal:
        left out of the anonymous share's count (found 2026-12-06, attack33: a node declaring
        2^31 slots and full raised the anonymous cap past every honest slot)."""
        return self.idle

    def held_out_slots(self) -> int:
        """Of the slots counted (declared less :meth:`idle_full_slots`), those of the nodes
        that may keep prompts for the model (``Pools.keeps``)."""
        return self.held - self.held_idle

    def shown_slots(self) -> int:
        """Of the slots counted (declared less :meth:`idle_full_slots`), those its nodes have
        shown they serve (:func:`shown_slots`): what the anonymous share counts (share35)."""
        return self.shown

    def tally(
        self, st: NodeStats, idle: int, shown: int, keeps: bool, sign: int, where: int,
        answered: bool,
    ) -> None:  # fmt: skip
        """``st`` (adding ``idle`` and ``shown``, and one to ``answered`` if ``answered``)
        comes in (``sign`` 1) or goes (-1) at ``where``."""
        mc = st.max_concurrency
        self.declared += sign * mc
        self.idle += sign * idle
        self.shown += sign * shown
        if answered:
            self.answered += sign
        if keeps:
            self.held += sign * mc
            self.held_idle += sign * idle
            self.held_shown += sign * shown
            self.held_keeper(where, sign)

    def held_keeper(self, where: int, sign: int) -> None:
        """A node that may keep prompts comes (``sign`` 1) or goes (-1) at ``where``."""
        if where == OPEN:
            self.held_open += sign
        else:
            self.held_shut += sign


class Pools:
    """Every model's :class:`Pool` and each node's place in them."""

    __slots__ = ("answered", "by_model", "idle", "keeps", "out", "place", "shown")

    def __init__(self) -> None:
        self.by_model: dict[str, Pool] = {}
        self.place: dict[str, int] = {}
        # node id -> its :func:`idle_slots` as its pools count them now (none: 0)
        self.idle: dict[str, int] = {}
        # node id -> its :func:`shown_slots` as its pools count them now (none: 0)
        self.shown: dict[str, int] = {}
        # the nodes counted in their pools' ``answered`` now (``st.answered`` then)
        self.answered: set[str] = set()
        # node id -> the models it may keep prompts for (``Pool.held``; ``set_keeps``)
        self.keeps: dict[str, frozenset[str]] = {}
        # a node placed in some of its models' pools only, those it is ejected from (rare:
        # rewrite reads it only while any node has one)
        self.out: dict[str, frozenset[str]] = {}

    def rewrite(self, st: NodeStats, part: RowPart) -> None:
        """Write ``part`` of ``st``'s rows again (one per model) if it has rows (open or
        kept). ``part``: ``scoring.write_row`` or one of its three parts. Called after every
        change to a node that stays where it is, so its counts are :meth:`recount` here."""
        nid = st.node_id
        where = self.place.get(nid)
        if where is None or not OPEN <= where <= FULL:
            return
        self.recount(st, where)
        if where == FULL:
            return
        models = st.models
        if self.out:  # ejected from some of its pools: no row there
            out = self.out.get(nid)
            if out is not None:
                models = models - out
        keeps = self.keeps.get(nid) if self.keeps else None
        if keeps is None:  # the common node: its rows in the sets of those that keep none
            if where == OPEN:
                for m in models:
                    bag = self.by_model[m].open
                    part(bag.vals, bag.slot(st) * ROW, st, m)
            else:
                for m in models:
                    bag = self.by_model[m].kept
                    part(bag.vals, bag.slot(st) * ROW, st, m)
            return
        for m in models:
            pool = self.by_model[m]
            if where == OPEN:
                bag = pool.open_keep if m in keeps else pool.open
            else:
                bag = pool.kept_keep if m in keeps else pool.kept
            part(bag.vals, bag.slot(st) * ROW, st, m)

    def move(self, st: NodeStats, target: int, out: frozenset[str] = frozenset()) -> bool:
        """Put ``st`` at ``target`` in each of its models' pools, but for those in ``out``,
        where it is counted ejected (an ejection only the pools that can spare it take,
        ``balancer.Router._maybe_eject``); ``True`` when it moved (a node moving into the
        open or kept set gets whole rows)."""
        nid = st.node_id
        current = self.place.get(nid, NONE)
        was_out = self.out.get(nid, _NO_MODELS)
        if current == target and was_out == out:  # counts: rewrite's (Router._restate)
            return False
        keeps = self.keeps.get(nid, _NO_MODELS)
        was_idle = self.idle.pop(nid, 0)
        was_shown = self.shown.pop(nid, 0)
        was_answered = nid in self.answered
        self.answered.discard(nid)
        idle = idle_slots(st, target)
        shown = shown_slots(st, target) if OPEN <= target <= FULL else 0
        if idle:
            self.idle[nid] = idle
        if shown:
            self.shown[nid] = shown
        answered = (st.answered or st.shown_elsewhere >= 0) and OPEN <= target <= FULL
        if answered:
            self.answered.add(nid)
        for m in st.models:
            pool = self.by_model.get(m)
            if pool is None:
                pool = self.by_model[m] = Pool()
            keeper = m in keeps
            here = EJECTED if m in was_out and current != NONE else current
            if OPEN <= here <= FULL:
                pool.take(st, here, keeper)
                pool.tally(st, was_idle, was_shown, keeper, -1, here, was_answered)
            elif here == EJECTED:
                pool.ejected -= 1
            there = EJECTED if m in out and target != NONE else target
            if OPEN <= there <= FULL:
                pool.put(st, m, there, keeper)
                pool.tally(st, idle, shown, keeper, 1, there, answered)
            elif there == EJECTED:
                pool.ejected += 1
        self.place[nid] = target
        if out and target != NONE:
            self.out[nid] = out
        else:
            self.out.pop(nid, None)
        return True

    def recount(self, st: NodeStats, where: int) -> None:
        """After a change to ``st``'s requests in flight, ``anon_closed`` or ``shown`` where it
        stays (``where``: ``OPEN``, ``KEPT`` or ``FULL``): its :func:`idle_slots` and
        :func:`shown_slots` in its pools' counts (its models but those it is ejected from);
        nothing when unchanged."""
        mc, n = st.max_concurrency, st.in_flight
        idle = 0  # idle_slots and shown_slots, inline: on a request's path
        if where == FULL or (where == KEPT and st.anon_closed):
            idle = mc - n
            if idle < 0:
                idle = 0
        shown, elsewhere = st.shown, st.shown_elsewhere
        if elsewhere > shown:  # the most any replica saw, not their sum (trust37)
            shown = elsewhere
        held = n + st.held_elsewhere
        if held > 0 and 2 * held + 1 > shown:
            shown = 2 * held + 1
        if shown > mc - idle:
            shown = mc - idle
        nid, idles, showns = st.node_id, self.idle, self.shown
        d = idle - idles.get(nid, 0)
        ds = shown - showns.get(nid, 0)
        da = (st.answered or elsewhere >= 0) - (nid in self.answered)
        if not d and not ds and not da:
            return
        if da > 0:
            self.answered.add(nid)
        elif da:
            self.answered.discard(nid)
        if d:
            if idle:
                idles[nid] = idle
            else:
                del idles[nid]
        if ds:
            if shown:
                showns[nid] = shown
            else:
                del showns[nid]
        keeps, models = self.keeps.get(nid, _NO_MODELS), st.models
        if self.out and nid in self.out:
            models = models - self.out[nid]
        by_model = self.by_model
        for m in models:
            pool = by_model[m]
            pool.idle += d
            pool.shown += ds
            pool.answered += da
            if m in keeps:
                pool.held_idle += d
                pool.held_shown += ds

    def elsewhere(self, st: NodeStats, shown: int, held: int = 0) -> None:
        """The most another replica has seen ``st`` serve at once is ``shown`` now, and the
        other replicas hold ``held`` requests there (``NodeStats.shown_elsewhere``,
        ``held_elsewhere``, ``core/fleet_shown.py``): recounted where it is placed."""
        if st.shown_elsewhere == shown and st.held_elsewhere == held:
            return
        st.shown_elsewhere, st.held_elsewhere = shown, held
        where = self.place.get(st.node_id, NONE)
        if OPEN <= where <= FULL:
            self.recount(st, where)

    def set_keeps(self, st: NodeStats | None, nid: str, models: frozenset[str] | None) -> None:
        """Node ``nid`` (``st``: its stats, if known) may keep prompts for ``models`` (None:
        for none): its slots count in those pools' ``held`` from now on, and it moves into
        their keepers' sets (``Pool.open_keep``, ...) and out of the others' ones."""
        old, new = self.keeps.get(nid, _NO_MODELS), models or _NO_MODELS
        if old == new:
            return
        if new:
            self.keeps[nid] = new
        else:
            del self.keeps[nid]
        if st is None or not OPEN <= self.place.get(nid, NONE) <= FULL:
            return
        idle, where = self.idle.get(nid, 0), self.place[nid]
        shown = self.shown.get(nid, 0)
        for m in st.models - self.out.get(nid, _NO_MODELS):
            if (m in old) != (m in new):
                pool = self.by_model[m]
                sign = 1 if m in new else -1
                pool.take(st, where, sign < 0)  # into the other sets (keeppick34)
                pool.put(st, m, where, sign > 0)
                pool.held += sign * st.max_concurrency
                pool.held_idle += sign * idle
                pool.held_shown += sign * shown
                pool.held_keeper(where, sign)


def unspared(
    pools: Pools, models: frozenset[str], max_fraction: float, placed: bool
) -> frozenset[str]:
    """Those of ``models`` (a node's) whose pools cannot spare the node one more ejection
    (``outlier.may_eject``: never more than ``max_fraction`` of a model's nodes; a one-node
    model's, never); ``placed``: the node is counted in them now, else it is about to be."""
    by_model, extra = pools.by_model, 0 if placed else 1
    out = []
    for m in models:
        pool = by_model.get(m)
        n, ejected = (0, 0) if pool is None else (pool.size, pool.ejected)
        if not may_eject(ejected, n + extra, max_fraction):
            out.append(m)
    return frozenset(out)
