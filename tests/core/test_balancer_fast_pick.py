"""``Router.pick``'s short path (one model, no constraints) decides as the general one does.

Two routers built and driven alike, with the same random stream: one answers through
``pick`` (the short path wherever it applies), the other through ``_pick_any`` (the general
loop every request took before). Their decisions must be equal, cost included, through
samples, loads, saturation, cold models, stale heartbeats, uptime, ejections and slow-start
weights; and the short path must have been taken in most of them.
"""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.balancer import Attempt, Decision, Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.scoring import RouteRequest

MODELS = ("a", "b")


def _router(seed: int) -> Router:
    policy = RoutingPolicy(ejection=EjectionPolicy(base_s=2.0, slow_start_s=5.0))
    return Router(policy, random.Random(seed))


def _general(r: Router, req: RouteRequest, now: float) -> Decision:
    r.tick(now)  # as pick does first
    return r._pick_any(req, now)


@pytest.mark.parametrize("seed", range(12))
def test_short_path_decides_as_the_general_path(seed: int) -> None:
    fast, slow = _router(seed), _router(seed)
    general_calls = 0
    real_pick_any = fast._pick_any

    def counted(req: RouteRequest, now: float) -> Decision:
        nonlocal general_calls
        general_calls += 1
        return real_pick_any(req, now)

    fast._pick_any = counted  # type: ignore[method-assign]
    rng = random.Random(1000 + seed)
    ids = [f"n{i}" for i in range(rng.choice([1, 3, 12, 40]))]
    now = 0.0
    open_atts: list[tuple[Attempt, Attempt]] = []
    for nid in ids:
        models = rng.sample(MODELS, rng.randint(1, 2))
        kw = dict(max_concurrency=rng.choice([1, 2, 4]), max_queue=rng.choice([0, 2]),
                  loaded=models[:1], cold_start_ms=rng.choice([0.0, 5000.0]))  # fmt: skip
        for r in (fast, slow):
            r.upsert_node(nid, models, now=now, **kw)  # type: ignore[arg-type]
    picks = 0
    for _ in range(1500):
        now += rng.uniform(0.0, 0.5)
        x = rng.random()
        nid = rng.choice(ids)
        if x < 0.1:
            kw = dict(in_flight=rng.randint(0, 3), queued=rng.randint(0, 3),
                      uptime=rng.choice([None, 1.0, 0.8]), loaded_models=rng.sample(MODELS, rng.randint(0, 2)))  # fmt: skip
            for r in (fast, slow):
                r.heartbeat(nid, now, **kw)  # type: ignore[arg-type]
        elif x < 0.14:
            routable = rng.random() < 0.8
            for r in (fast, slow):
                r.set_routable(nid, routable)
        elif x < 0.4 and open_atts:
            a, b = open_atts.pop(rng.randrange(len(open_atts)))
            outcome = rng.choice([Outcome.SUCCESS] * 4 + list(Outcome))
            first = rng.random() < 0.5
            end = now + rng.uniform(0.0, 1.0)
            tokens = rng.randint(0, 40)
            for r, att in ((fast, a), (slow, b)):
                if first:
                    r.first_token(att, now)
                r.finish(att, end, outcome, completion_tokens=tokens, retry_after_s=1.0)
        else:
            model = rng.choice(MODELS)
            req = RouteRequest((model,), expected_tokens=rng.choice([None, 16, 300]))
            got, want = fast.pick(req, now), _general(slow, req, now)
            assert got == want
            assert repr(got.cost_ms) == repr(want.cost_ms) and type(got) is Decision
            picks += 1
            if got.verdict is Verdict.OK and got.node_id is not None and rng.random() < 0.7:
                open_atts.append(
                    (fast.begin(got.node_id, model, now), slow.begin(got.node_id, model, now))
                )
    assert picks > 500
    assert general_calls < picks  # the short path answered the others


def test_short_path_with_slow_start_weights() -> None:
    """Nodes back from an ejection, in slow start: the weights apply on the short path too."""
    fast, slow = _router(5), _router(5)
    for r in (fast, slow):
        for i in range(4):
            r.upsert_node(f"n{i}", ("a",), now=0.0, max_concurrency=4)
        # all four fail once (the same success EWMA); n0 and n1 are ejected (half the pool)
        ejected = [
            r.finish(r.begin(f"n{i}", "a", 0.0), 0.1, Outcome.CONNECT_ERROR) for i in range(4)
        ]
        assert ejected == [True, True, False, False]
        r.tick(2.5)  # n0 and n1 back (at 2.1), their weight < 1 for the 5 s ramp
    assert not fast.outliers.all_full_weight
    req = RouteRequest(("a",))
    ramping, after = set(), set()
    for step in range(200):
        now = 2.5 + step * 0.05  # their weight is 1 again from 7.1
        got = fast.pick(req, now)
        assert got == _general(slow, req, now)
        (ramping if now < 7.0 else after).add(got.node_id)
    assert ramping == {"n2", "n3"} and after == {"n0", "n1", "n2", "n3"}
