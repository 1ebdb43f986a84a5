"""The router's flat rows (each open node's scoring inputs per model, ``IndexedRows``) stay in
step with its ``NodeStats`` through every update path, and a pick sees each input change.

A pick reads only the rows; the objects are what ``node_cost`` reads. So: after any
sequence of registrations, removals, routability, heartbeats, another replica's ``heard``,
begins, first tokens, ends with every outcome, blames and ejections, every open member's row
must equal ``node_row`` of its object; and after each single change, the pick's cost must
be the objects' ``node_cost`` (and differ from before the change).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from LLM_Mesh.core.balancer import Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, node_cost, node_row

MODELS = ["a", "b", "c"]


def _rows_in_step(r: Router) -> int:
    """Assert every open member's row is ``node_row`` of its node; the rows checked."""
    checked = 0
    for m, pool in r._pools.items():
        bag = pool.open
        assert len(bag.vals) == len(bag) * bag.width
        for st in bag:
            assert r.node(st.node_id) is st
            assert bag.row(st) == node_row(st, m), (st.node_id, m)
            checked += 1
    return checked


@pytest.mark.parametrize("seed", range(6))
def test_rows_stay_in_step_through_any_sequence_of_changes(seed: int) -> None:
    rng = random.Random(seed)
    pol = RoutingPolicy(ejection=EjectionPolicy(base_s=1.0, slow_start_s=2.0))
    r = Router(pol, random.Random(seed + 1))
    ids = [f"n{i}" for i in range(10)]
    atts = []
    done = []
    now = 0.0
    checked = 0
    for _ in range(2500):
        now += rng.uniform(0.0, 0.3)
        nid = rng.choice(ids)
        x = rng.random()
        if x < 0.06 or r.node(nid) is None:
            ms = rng.sample(MODELS, rng.randint(1, 3))
            r.upsert_node(nid, ms, now=now, loaded=ms[: rng.randint(0, 2)],
                          max_concurrency=rng.choice([1, 2, 4]), max_queue=rng.choice([0, 1, 3]),
                          cold_start_ms=rng.choice([0.0, 800.0]), uptime=rng.choice([1.0, 0.7]),
                          model_cold_start_ms={ms[0]: rng.uniform(0, 3000)})  # fmt: skip
        elif x < 0.08:
            r.remove_node(nid)
        elif x < 0.13:
            r.set_routable(nid, rng.random() < 0.75)
        elif x < 0.28:
            r.heartbeat(nid, now, in_flight=rng.randint(0, 3), queued=rng.randint(0, 3),
                        loaded_models=rng.sample(MODELS, rng.randint(0, 3)),
                        uptime=rng.choice([None, 1.0, 0.5]),
                        model_cold_start_ms={rng.choice(MODELS): rng.uniform(0, 900)},
                        service_s=rng.choice([None, 0.4]))  # fmt: skip
        elif x < 0.33:
            r.heard(nid, now - rng.uniform(0, 20))
        elif x < 0.40 and atts:
            r.first_token(rng.choice(atts), now)
        elif x < 0.58 and atts:
            att = atts.pop(rng.randrange(len(atts)))
            r.finish(att, now, rng.choice(list(Outcome)), completion_tokens=rng.randint(0, 30),
                     ttft_ms=rng.choice([None, 40.0]), retry_after_s=rng.choice([None, 0.5]))  # fmt: skip
            done.append(att)
        elif x < 0.62 and done:
            r.fault(done.pop(rng.randrange(len(done))), now)
        else:
            d = r.pick(RouteRequest(tuple(rng.sample(MODELS, rng.randint(1, 2)))), now)
            if d.node_id is not None and d.model is not None and rng.random() < 0.8:
                atts.append(r.begin(d.node_id, d.model, now))
        checked += _rows_in_step(r)
    assert checked > 5_000


def _two(now: float = 0.0) -> Router:
    """Nodes x and y for model "m" (x also hosts "solo", alone), warm, with samples; no
    ejections (a failure changes the success EWMA only)."""
    pol = RoutingPolicy(ejection=EjectionPolicy(max_ejected_fraction=0.0))
    r = Router(pol, random.Random(4))
    r.upsert_node("x", ["m", "solo"], now=now, max_concurrency=4, cold_start_ms=500.0)
    r.upsert_node("y", ["m"], now=now, max_concurrency=4)
    for nid in ("x", "y"):
        att = r.begin(nid, "m", now)
        r.first_token(att, now + 0.1)
        r.finish(att, now + 0.5, Outcome.SUCCESS, completion_tokens=20)
    return r


def _begin(r: Router, now: float) -> None:
    r.begin("x", "m", now)


def _first_token(r: Router, now: float) -> None:
    att = r.begin("x", "m", now - 2.0)
    r.first_token(att, now)


def _finish_tokens(r: Router, now: float) -> None:
    att = r.begin("x", "m", now - 3.0)
    r.first_token(att, now - 2.9)
    r.finish(att, now, Outcome.SUCCESS, completion_tokens=5)


def _finish_ttft(r: Router, now: float) -> None:
    r.finish(r.begin("x", "m", now - 4.0), now, Outcome.SUCCESS, ttft_ms=3000.0)


def _finish_failed(r: Router, now: float) -> None:
    r.finish(r.begin("x", "m", now - 0.1), now, Outcome.SERVER_ERROR)


def _fault(r: Router, now: float) -> None:
    att = r.begin("x", "m", now - 0.1)
    r.finish(att, now - 0.05, Outcome.REJECTED)
    r.fault(att, now)


def _finish_loads_model(r: Router, now: float) -> None:
    r.heartbeat("x", now, in_flight=0, queued=0, loaded_models=["m"])  # solo cold
    att = r.begin("x", "solo", now - 0.3)
    r.finish(att, now, Outcome.SUCCESS, completion_tokens=1)  # answered: solo loaded


def _hb_load(r: Router, now: float) -> None:
    r.heartbeat("x", now, in_flight=2, queued=1)


def _hb_loaded(r: Router, now: float) -> None:
    r.heartbeat("x", now, in_flight=0, queued=0, loaded_models=["m"])


def _hb_cold_start(r: Router, now: float) -> None:
    r.heartbeat("x", now - 1.0, in_flight=0, queued=0, loaded_models=[])
    r.heartbeat("x", now, in_flight=0, queued=0, model_cold_start_ms={"solo": 9000.0})


def _hb_uptime(r: Router, now: float) -> None:
    r.heartbeat("x", now, in_flight=0, queued=0, uptime=0.6)


def _hb_fresh(r: Router, now: float) -> None:  # x was stale (> 15 s without a heartbeat)
    r.heartbeat("x", now, in_flight=0, queued=0)


def _heard_fresh(r: Router, now: float) -> None:  # heard through another replica
    r.heard("x", now)


def _loaded_before(r: Router, now: float) -> None:  # set-up: x reported load
    r.heartbeat("x", now - 1.0, in_flight=1, queued=2)


def _heard_drops_load(r: Router, now: float) -> None:
    r.heard("x", now)


def _reregistered(r: Router, now: float) -> None:
    r.upsert_node("x", ["m", "solo"], now=now, max_concurrency=1, cold_start_ms=500.0)


def _back_in(r: Router, now: float) -> None:
    r.set_routable("x", False)
    r.heartbeat("x", now, in_flight=3, queued=0)
    r.set_routable("x", True)


CHANGES: dict[str, Callable[[Router, float], None]] = {
    "begin: in flight, waiting": _begin,
    "first token: ttft": _first_token,
    "finish: per token": _finish_tokens,
    "finish: ttft without a first token": _finish_ttft,
    "finish: a failure's success EWMA": _finish_failed,
    "fault: a blamed refusal": _fault,
    "finish: the model loaded": _finish_loads_model,
    "heartbeat: load": _hb_load,
    "heartbeat: loaded models": _hb_loaded,
    "heartbeat: cold start": _hb_cold_start,
    "heartbeat: uptime": _hb_uptime,
    "heartbeat: fresh again": _hb_fresh,
    "heard: fresh again": _heard_fresh,
    "heard: load dropped": _heard_drops_load,
    "re-registered: concurrency": _reregistered,
    "routable again, other load": _back_in,
}


def _costs(r: Router, now: float) -> tuple[float, float]:
    """x's cost for "m" (the general path, allow_nodes) and "solo" (the short path), as the
    pick computes them from the rows; each checked equal to ``node_cost`` of the objects."""
    st = r.node("x")
    assert isinstance(st, NodeStats)
    sp = r.policy.scoring
    out = []
    for req in (RouteRequest(("m",), allow_nodes=frozenset({"x"})), RouteRequest(("solo",))):
        d = r.pick(req, now)
        assert d.verdict is Verdict.OK and d.node_id == "x"
        want = node_cost(st, req.models[0], sp.default_tokens, now, sp, 1.0)
        assert repr(d.cost_ms) == repr(want)
        out.append(want)
    return out[0], out[1]


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_pick_sees_each_input_change(name: str) -> None:
    r = _two()
    now = 30.0 if "fresh" in name else 10.0  # x and y stale from 15 s on
    if "fresh" in name:
        r.heartbeat("y", now, in_flight=0, queued=0)
    if name in ("heard: load dropped", "re-registered: concurrency"):
        _loaded_before(r, now)
    before = _costs(r, now)
    CHANGES[name](r, now)
    after = _costs(r, now)
    assert after != before, name  # the pick saw it
    assert _rows_in_step(r) >= 3
