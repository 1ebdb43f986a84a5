"""The pools' slot counts, kept as nodes change (core/route_pools.py, session 34): every
anonymous request's admission reads ``Router.slots`` (``Routing.slots``), which was one
pass over the model's nodes (open, kept and full) per request. The counts are now kept
where a node enters or leaves a pool's set, its requests in flight move, ``anon_closed``
flips or the nodes that may keep prompts change; these tests drive random sequences of
every such change through the router and compare the counts with the full pass each
step (the oracle below: the code the counts replace), so a mutation point that forgets
to count shows as drift."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from LLM_Mesh.core import shown_window
from LLM_Mesh.core.balancer import Attempt, Outcome, Router, RoutingPolicy
from LLM_Mesh.core.fleet_shown import Elsewhere
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.route_pools import Pool
from LLM_Mesh.core.scoring import NodeStats, node_row

MODELS = ("m1", "m2", "m3")


@pytest.fixture(autouse=True, scope="module")
def _short_windows() -> Iterator[None]:
    """share35b: what a node has shown it serves decays over windows of 60 s; 1 s here, so
    the driver's steps (0 to 2 s) roll them often: the counts must follow each decay."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shown_window, "SHOWN_WINDOW_S", 1.0)
        yield


NODES = ("a", "b", "c", "d", "e")
OUTCOMES = tuple(Outcome)


# -- the oracle: the full passes Pool made before session 34 -------------------------
# (each set split in two since keeppick34: the nodes that may keep prompts have their own)
def opened(p: Pool) -> list[NodeStats]:
    return [*p.open, *p.open_keep]


def kept(p: Pool) -> list[NodeStats]:
    return [*p.kept, *p.kept_keep]


def full(p: Pool) -> list[NodeStats]:
    return [*p.full, *p.full_keep]


def declared_oracle(p: Pool) -> int:
    return sum(st.max_concurrency for b in (opened(p), kept(p), full(p)) for st in b)


def idle_oracle(p: Pool) -> int:
    fulls = [*full(p), *(st for st in kept(p) if st.anon_closed)]
    return sum(max(0, st.max_concurrency - st.in_flight) for st in fulls)


def held_out_oracle(p: Pool, nodes: Collection[str]) -> int:
    n = 0
    for bucket, idle in ((opened(p), False), (kept(p), None), (full(p), True)):
        for st in bucket:
            if st.node_id in nodes:
                gone = idle if idle is not None else st.anon_closed
                n += min(st.in_flight, st.max_concurrency) if gone else st.max_concurrency
    return n


def shown_oracle(p: Pool, nodes: Collection[str] | None = None) -> int:
    """share35: each node's slots counted (declared less idle) it has shown it serves:
    ``st.shown``, or ``2n + 1`` while this router holds ``n`` requests there."""
    n = 0
    for bucket, idle in ((opened(p), False), (kept(p), None), (full(p), True)):
        for st in bucket:
            if nodes is not None and st.node_id not in nodes:
                continue
            gone = idle if idle is not None else st.anon_closed
            counted = min(st.in_flight, st.max_concurrency) if gone else st.max_concurrency
            # the most any replica saw (redisshare36; the max since trust37), every
            # replica's requests held there in 2n + 1
            held = st.in_flight + st.held_elsewhere
            room = max(st.shown, st.shown_elsewhere)
            if held > 0:
                room = max(room, 2 * held + 1)
            n += min(counted, room)
    return n


class Driver:
    """Random router operations, with the prompt keepers as ``Routing`` keeps them."""

    def __init__(self, seed: int, frac: float = 0.5) -> None:
        pol = RoutingPolicy(
            ejection=EjectionPolicy(base_s=1.0, max_s=4.0, max_ejected_fraction=frac)
        )
        self.r = Router(pol, rng=random.Random(seed))
        self.now = 0.0
        self.open: list[Attempt] = []
        self.done: list[Attempt] = []
        self.keepers: dict[str, frozenset[str]] = {}

    def models(self, rng: random.Random) -> frozenset[str]:
        return frozenset(m for m in MODELS if rng.random() < 0.6) or frozenset({MODELS[0]})

    @staticmethod
    def outcome(rng: random.Random) -> Outcome:
        """Mostly answers (share35b: so nodes show slots, which then decay), else any."""
        return Outcome.SUCCESS if rng.random() < 0.6 else rng.choice(OUTCOMES)

    def step(self, op: int, rng: random.Random) -> None:
        r, nid = self.r, rng.choice(NODES)
        self.now += rng.choice((0.0, 0.01, 0.3, 2.0))
        now, st = self.now, r.node(nid)
        if op == 0 or st is None:
            r.upsert_node(nid, self.models(rng), now=now, max_concurrency=rng.randint(1, 5),
                          max_queue=rng.randint(0, 6))  # fmt: skip
        elif op == 1:
            r.remove_node(nid, now if rng.random() < 0.5 else None)
        elif op == 2:
            r.set_routable(nid, rng.random() < 0.7)
        elif op == 3:
            keyed = now - rng.random() if rng.random() < 0.3 else None
            r.heartbeat(nid, now, in_flight=rng.randint(0, 4), queued=rng.randint(0, 6),
                        keyed_at=keyed)  # fmt: skip
        elif op == 4:
            r.heard(nid, now - rng.random(), now - 5 * rng.random() if rng.random() < 0.3 else None)
        elif op in (5, 6, 7):  # begin: the most common
            self.open.append(r.begin(nid, rng.choice(sorted(st.models)), now, rng.random() < 0.3))
        elif op == 8 and self.open:
            r.first_token(rng.choice(self.open), now)
        elif op in (9, 10) and self.open:
            att = self.open.pop(rng.randrange(len(self.open)))
            r.finish(att, now, self.outcome(rng), completion_tokens=rng.randint(0, 5),
                     retry_after_s=rng.choice((None, 0.5, 3.0)))  # fmt: skip
            self.done.append(att)
        elif op == 11 and self.done:
            r.fault(rng.choice(self.done), now)
        elif op == 12:
            r.tick(now)
        elif op == 13:
            models = self.models(rng) if rng.random() < 0.6 else None
            if models is None:
                self.keepers.pop(nid, None)
            else:
                self.keepers[nid] = models
            r.keeps_prompts(nid, models)
        elif op == 14:  # redisshare36: other replicas' views of some nodes, or none (Redis out)
            views = {
                n: Elsewhere(rng.randint(0, 6), rng.choice((0, 0, 1, 3)))
                for n in NODES
                if rng.random() < 0.4
            }
            r.fleet_shown(None if rng.random() < 0.2 else views)

    def check(self) -> None:
        r = self.r
        for m, pool in r._index.by_model.items():
            keep = {n for n, ms in self.keepers.items() if m in ms}
            declared, idle, held = (
                declared_oracle(pool),
                idle_oracle(pool),
                held_out_oracle(pool, keep),
            )
            assert (pool.declared_slots(), pool.idle_full_slots(), pool.held_out_slots()) == (
                declared,
                idle,
                held,
            ), m
            shown, held_shown = shown_oracle(pool), shown_oracle(pool, keep)
            assert pool.shown_slots() == shown, m
            answered = sum(  # here, or at another replica (redisshare36)
                st.answered or st.shown_elsewhere >= 0
                for b in (opened(pool), kept(pool), full(pool))
                for st in b
            )
            assert pool.answered == answered, m
            # share35: what the nodes have shown they serve, at least one slot of those
            # counted; every slot counted until one of them has answered (a fresh start)
            counted, left = declared - idle, shown - held_shown
            assert r.slots(m) == (max(shown, min(2, counted)) if answered else counted)
            counted -= held
            assert r.slots(m, held_out=True) == (
                max(left, min(2, counted)) if answered else counted
            )
            # the open and shut nodes an anonymous request that did not opt in may use
            # (review34: AnonymousLast read the pool's, then asked the router each time)
            n_open = sum(st.node_id not in keep for st in opened(pool))
            shut = sum(st.node_id not in keep for b in (kept(pool), full(pool)) for st in b)
            assert r.pool_counts(m, held_out=True) == (n_open, shut, pool.ejected), m
            assert r.pool_counts(m) == (len(opened(pool)), len(kept(pool)) + len(full(pool)),
                                        pool.ejected)  # fmt: skip
            # keeppick34: the keepers' sets hold exactly the nodes that may keep prompts for
            # the model, each with its row as written afresh (a pick reads only rows)
            for plain, keeping in ((pool.open, pool.open_keep), (pool.kept, pool.kept_keep),
                                   (pool.full, pool.full_keep)):  # fmt: skip
                assert not any(st.node_id in keep for st in plain), m
                assert all(st.node_id in keep for st in keeping), m
            for bag in (pool.open, pool.open_keep, pool.kept, pool.kept_keep):
                for st in bag:
                    assert bag.row(st) == node_row(st, m), (m, st.node_id)
            # every routable node of the model is in its pool once: in a set, or counted
            # ejected where it is (``Pool.ejected``, read by ``unspared``), nowhere else
            placed = [n for n, st in r._nodes.items() if st.routable and m in st.models]
            assert pool.size == len(placed), m
            assert pool.ejected == sum(r.ejected_for(n, m) for n in placed), m
        # the index keeps an ejection's models only for nodes ejected from some pools
        assert all(ms and r.node(n) is not None for n, ms in r._index.out.items())


@settings(max_examples=150, deadline=None)
@given(hst.integers(0, 2**32), hst.lists(hst.integers(0, 14), min_size=1, max_size=120),
       hst.sampled_from((0.0, 0.5, 1.0)))  # fmt: skip
def test_the_kept_counts_equal_the_full_pass_after_every_operation(
    seed: int, ops: list[int], frac: float
) -> None:
    d, rng = Driver(seed, frac), random.Random(seed)
    for op in ops:
        d.step(op, rng)
        d.check()


def test_no_drift_over_many_random_operations() -> None:
    for seed in range(4):
        d, rng = Driver(seed), random.Random(seed)
        for i in range(6000):
            d.step(rng.randrange(15), rng)
            if i % 7 == 0:
                d.check()
        d.check()
        for att in d.open:  # every request ends: the counts come back to the full pass
            d.r.finish(att, d.now + 1, Outcome.SUCCESS)
        d.check()


def test_a_full_nodes_requests_move_its_idle_slots_where_it_stays_full() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=2, max_queue=0)
    r.keeps_prompts("b", frozenset({"m"}))
    for nid, n in (("a", 4), ("b", 2)):  # each has served all its slots at once (share35)
        atts = [r.begin(nid, "m", 0.0) for _ in range(n)]
        for att in atts:
            r.finish(att, 0.0, Outcome.SUCCESS)
    assert r.slots("m") == 6 and r.slots("m", held_out=True) == 4
    r.heartbeat("a", 0.1, in_flight=4, queued=0)  # full by its own word, none of ours
    assert r.slots("m") == 2
    atts = [r.begin("a", "m", 0.2) for _ in range(3)]  # still full: 3 held, 1 idle
    assert r.slots("m") == 5
    r.finish(atts[0], 0.3, Outcome.SUCCESS)
    assert r.slots("m") == 4
    r.keeps_prompts("b", None)
    assert r.slots("m", held_out=True) == 4


def test_a_node_counts_the_slots_it_has_shown_it_serves() -> None:
    """share35: an open node's declared slots count only as far as it has served them at
    once (measured here), or holds this router's requests (``2n + 1``, so the share grows
    into a node that takes what it is sent); a hard failure starts it over; the model has
    at least 2 slots (of those counted) once one has answered, every declared one before."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    r.upsert_node("z", ("m",), now=0.0, max_concurrency=2**31 - 1, max_queue=0)
    assert r.slots("m") == 4 + 2**31 - 1  # a fresh start: none answered, all counted
    a0 = r.begin("a", "m", 0.0)
    r.finish(a0, 0.0, Outcome.SUCCESS)  # one answered: from now on what each has shown
    assert r.node("a").shown == 1 and r.slots("m") == 2  # the floor: 2 slots
    a1 = r.begin("a", "m", 0.0)
    assert r.slots("m") == 3  # one held: 2n + 1
    a2 = r.begin("a", "m", 0.0)
    assert r.slots("m") == 4  # at most its slots
    r.finish(a1, 0.1, Outcome.SUCCESS)  # answered with 2 held: shown 2
    r.finish(a2, 0.1, Outcome.SUCCESS)
    assert r.node("a").shown == 2 and r.slots("m") == 2
    z = r.begin("z", "m", 0.2)
    r.finish(z, 9.0, Outcome.SUCCESS)  # the phantom answers one, slowly: 1 slot, not 2^31
    assert r.slots("m") == 3
    z = r.begin("z", "m", 9.0)
    r.finish(z, 9.1, Outcome.SERVER_ERROR)  # a hard failure: what it showed starts over
    assert r.node("z").shown == 0 and r.slots("m") == 2
    r.remove_node("z")
    r.upsert_node("c", ("m",), now=9.2, max_concurrency=1, max_queue=0)
    r.remove_node("a")  # a one-slot model: its one slot, the floor no more than that
    assert r.slots("m") == 1
