"""Nodes that may keep prompts, held out of a pick by the router's own sets (found
2026-12-06, keeppick34; ``core/route_keep.py``): the gateway named every such node in the
``deny_nodes`` of each request that did not opt in, so each pick drew past them (16
rejected draws, then one ``permits`` call per node of the open set): O(such nodes) per
request, and registering them costs nothing. These tests build the request as the send
stage does (``Exchange._route_request``) and pick with a real router."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

import LLM_Mesh.core.route_sample as route_sample
from LLM_Mesh.core.balancer import Outcome, Router, Verdict
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.route_keep import Both
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, ScoringPolicy
from LLM_Mesh.registry.extensions import Extensions
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.send import Exchange

MODEL = "mistral-7b"


def route(keepers: frozenset[str], allowed: bool, **ext: object) -> RouteRequest:
    """The send stage's route request for a request that opted in (``allowed``) or not."""
    spec = get_spec(MODEL)
    assert spec is not None
    job = Job(path="/v1/chat/completions", model=MODEL, body={}, raw=b"{}", stream=False,
              prompt_text="hi", max_tokens=50, price=spec.price, estimate=1,
              catalog_context=spec.context_length, request_id="r", started=0.0,
              ext=Extensions(allow_prompt_keeping=allowed, **ext))  # type: ignore[arg-type]  # fmt: skip
    routing = SimpleNamespace(keepers_for=lambda m, a=False: frozenset() if a else keepers)
    return Exchange(SimpleNamespace(routing=routing, quality=None), job)._route_request()  # type: ignore[arg-type]


def fleet(keepers: int, seed: int, honest: int = 10) -> tuple[Router, frozenset[str], list[int]]:
    """``honest`` nodes (each a different load: ``i`` requests in flight) with ``keepers``
    nodes that may keep prompts registered between them; the router's ``rand()`` calls
    counted (in the returned list's one item)."""
    rng, calls = random.Random(seed), [0]

    def rand() -> float:
        calls[0] += 1
        return rng.random()

    r = Router(rng=SimpleNamespace(random=rand))  # type: ignore[arg-type]
    keep = frozenset(f"k{i}" for i in range(keepers))
    per = keepers // honest
    for i in range(honest):
        r.upsert_node(f"h{i}", (MODEL,), now=0.0, max_concurrency=64)
        for _ in range(i):
            r.begin(f"h{i}", MODEL, 0.0)
        for nid in sorted(keep)[i * per : (i + 1) * per]:
            r.upsert_node(nid, (MODEL,), now=0.0, max_concurrency=64)
            r.keeps_prompts(nid, frozenset({MODEL}))
    return r, keep, calls


def test_a_pick_that_did_not_opt_in_costs_the_same_beside_thousands_of_keepers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attack: 2,000 keepers registered for the model. Each pick of a request that did
    not opt in draws and checks a few nodes, as many as with no keeper (before: 16
    rejected draws, then 2,010 ``permits`` calls a pick), and picks an honest node."""
    checked = [0]
    real = route_sample.permits

    def counted(req: RouteRequest, st: object) -> bool:
        checked[0] += 1
        return real(req, st)  # type: ignore[arg-type]

    monkeypatch.setattr(route_sample, "permits", counted)
    for extra in ({}, {"deny_nodes": frozenset({"h0"})}):  # plain, and a constrained one
        r, keep, calls = fleet(2000, 1)
        req = route(keep, False, **extra)
        checked[0] = calls[0] = 0
        for _ in range(200):
            d = r.pick(req, 1.0)
            assert d.node_id is not None and d.node_id.startswith("h"), d
        per_pick = 2 * r.policy.choices  # distinct draws of 4 of the 10 honest ones
        assert calls[0] <= 200 * per_pick and checked[0] <= 200 * per_pick, (extra, calls, checked)


def test_the_choice_among_honest_nodes_is_unchanged_seeded() -> None:
    """Seeded: a request that did not opt in picks, beside 1,000 keepers, exactly the nodes
    it picks with none registered (the same draws over the same honest set)."""
    for seed in range(3):
        plain, _, _ = fleet(0, seed)
        with_keepers, keep, _ = fleet(1000, seed)
        a = [plain.pick(route(frozenset(), False), 1.0).node_id for _ in range(500)]
        b = [with_keepers.pick(route(keep, False), 1.0).node_id for _ in range(500)]
        assert a == b
        assert len(set(a)) > 3  # the draws choose among several


def test_an_opted_in_request_draws_from_every_node_as_one_set() -> None:
    """Opted in: the choice's distribution over honest nodes and keepers together is the
    one over the same nodes all honest (uniform draws over the union, best of them)."""
    n = 40_000
    mixed, keep, _ = fleet(10, 7, honest=10)  # 10 honest (loads 0..9) and 10 keepers (idle)
    for i, nid in enumerate(sorted(keep)):  # keepers' loads 10..19: every cost distinct
        for _ in range(10 + i):
            mixed.begin(nid, MODEL, 0.0)
    ref = Router(rng=random.Random(8))
    for i in range(20):
        nid = f"h{i}" if i < 10 else sorted(keep)[i - 10]
        ref.upsert_node(nid, (MODEL,), now=0.0, max_concurrency=64)
        for _ in range(i):
            ref.begin(nid, MODEL, 0.0)
    got = Counter(mixed.pick(route(keep, True), 1.0).node_id for _ in range(n))
    want = Counter(ref.pick(route(frozenset(), True), 1.0).node_id for _ in range(n))
    assert any(k in got for k in keep)  # keepers are drawn
    for nid in set(got) | set(want):
        p = want[nid] / n
        sd = (2 * p * (1 - p) / n) ** 0.5
        assert abs(got[nid] / n - p) <= 5 * sd + 1e-9, (nid, got[nid], want[nid])


def _stats(*ids: str) -> list[NodeStats]:
    return [NodeStats(nid, (MODEL,), ScoringPolicy()) for nid in ids]


def _set(members: list[NodeStats]) -> IndexedSet[NodeStats]:
    s: IndexedSet[NodeStats] = IndexedSet()
    for st in members:
        s.add(st)
    return s


def test_two_sets_read_as_one_are_the_first_then_the_second() -> None:
    """``Both``: the members of the first set, then those of the second, by position."""
    x, y, z, w = _stats("x", "y", "z", "w")
    both = Both(_set([x, y]), _set([z]))
    assert len(both) == 3
    assert list(both) == [x, y, z]
    assert [both.at(i) for i in range(3)] == [x, y, z]
    assert x in both and z in both and w not in both
    with pytest.raises(IndexError):
        both.at(3)
    assert len(Both(_set([]), _set([z]))) == 1 and list(Both(_set([x]), _set([]))) == [x]


def test_a_draw_over_two_sets_is_the_draw_over_their_union() -> None:
    """Drawn with the same random numbers, ``Both`` gives the members one set holding both
    would give (uniform over the union), whatever ``k`` against the members."""
    members = _stats(*(f"n{i}" for i in range(7)))
    union = _set(members)
    for split in (0, 1, 3, 7):
        both = Both(_set(members[:split]), _set(members[split:]))
        for k in (1, 2, 4, 7, 9):
            for seed in range(5):
                got = both.draw(k, random.Random(seed).random)
                assert got == union.draw(k, random.Random(seed).random), (split, k, seed)
                assert len(got) == min(k, 7) and len(set(got)) == len(got)


def test_an_opted_in_request_with_a_node_list_draws_keepers_too() -> None:
    """A constrained request that opted in draws from both kinds of sets as one: a denied
    node is never picked, the keepers are; named nodes are found in either set."""
    r, keep, _ = fleet(10, 3, honest=10)  # keepers idle, honest ones loaded 0..9
    req = route(keep, True, deny_nodes=frozenset({"h0", "k0"}))
    got = Counter(r.pick(req, 1.0).node_id for _ in range(2000))
    assert "h0" not in got and "k0" not in got
    assert sum(n for nid, n in got.items() if nid in keep) > 1000, got  # the idle ones win
    assert len([nid for nid in got if nid in keep]) == 9, got
    for allow in ({"k3", "h5"}, {"h5"}, {"k3"}):
        req = route(keep, True, allow_nodes=frozenset(allow))
        picked = {r.pick(req, 1.0).node_id for _ in range(50)}
        assert picked == ({"k3"} if "k3" in allow else {"h5"}), (allow, picked)


def _keeper_router() -> Router:
    """One node, ``a``, that may keep prompts for ``m`` (a keyed request ran there)."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.keeps_prompts("a", frozenset({"m"}))
    r.begin("a", "m", 1.0, keyed=True)  # the node keeps places for keyed requests now
    return r


def _verdicts(r: Router, now: float) -> dict[tuple[bool, bool], tuple[Verdict, str | None]]:
    """Each request kind's decision: (keyed, opted in) -> (verdict, node)."""
    out = {}
    for keyed in (False, True):
        for keepers in (False, True):
            d = r.pick(RouteRequest(("m",), keyed=keyed, keepers=keepers), now)
            out[keyed, keepers] = (d.verdict, d.node_id)
    return out


def test_a_keeper_closed_to_anonymous_requests_serves_opted_in_keyed_ones_only() -> None:
    """A keeper whose places are kept for keyed requests (an anonymous 429 closed it to
    anonymous ones): an opted-in keyed request is sent there, an opted-in anonymous one
    waits for it, and a request that did not opt in finds no node at all."""
    r = _keeper_router()
    r.finish(r.begin("a", "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=2.0)
    assert r.pool_counts("m") == (0, 1, 0) and r.pool_counts("m", held_out=True) == (0, 0, 0)
    got = _verdicts(r, 1.3)
    assert got[True, True] == (Verdict.OK, "a")
    assert got[False, True][0] is Verdict.SATURATED
    assert got[False, False] == (Verdict.NO_NODE, None)
    assert got[True, False] == (Verdict.NO_NODE, None)


def test_a_full_keeper_makes_opted_in_requests_wait_and_is_nothing_to_the_others() -> None:
    r = _keeper_router()
    r.finish(r.begin("a", "m", 1.1, keyed=True), 1.2, Outcome.OVERLOADED)  # full for all
    assert r.pool_counts("m") == (0, 1, 0) and r.pool_counts("m", held_out=True) == (0, 0, 0)
    got = _verdicts(r, 1.3)
    assert got[True, True][0] is Verdict.SATURATED and got[False, True][0] is Verdict.SATURATED
    assert got[True, False] == (Verdict.NO_NODE, None)
    assert got[False, False] == (Verdict.NO_NODE, None)


def test_an_open_keeper_serves_only_the_requests_that_opted_in() -> None:
    r = _keeper_router()
    r.finish(r.begin("a", "m", 1.1, keyed=True), 1.2, Outcome.SUCCESS)
    r.heartbeat("a", 2.0, in_flight=0, queued=0)
    assert r.pool_counts("m") == (1, 0, 0) and r.pool_counts("m", held_out=True) == (0, 0, 0)
    got = _verdicts(r, 2.1)
    assert got[True, True] == got[False, True] == (Verdict.OK, "a")
    assert got[True, False] == got[False, False] == (Verdict.NO_NODE, None)


def test_a_keyed_request_that_did_not_opt_in_takes_a_kept_node_but_never_a_keepers() -> None:
    """No node open: a keyed request goes where places are kept for it, among the nodes
    that keep no prompts unless it opted in (the keeper ``a`` is the idler one)."""
    r = _keeper_router()
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.begin("b", "m", 1.0, keyed=True)
    r.begin("b", "m", 1.0, keyed=True)  # b: busier than a
    for nid in ("a", "b"):  # an anonymous 429 at each: kept for keyed requests
        r.finish(r.begin(nid, "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=2.0)
    assert r.pool_counts("m") == (0, 2, 0)
    plain = RouteRequest(("m",), keyed=True)
    assert {r.pick(plain, 1.3).node_id for _ in range(50)} == {"b"}
    opted = RouteRequest(("m",), keyed=True, keepers=True)
    assert {r.pick(opted, 1.3).node_id for _ in range(50)} == {"a"}


def test_an_opted_in_request_waits_on_every_full_node_not_the_keepers_alone() -> None:
    """Full nodes that keep no prompts count in an opted-in request's wait as in anyone's:
    with no keeper at all it is told to wait, not that no node serves the model; beside a
    full keeper, the sooner of the two."""
    r = Router(rng=random.Random(1))
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.finish(r.begin("b", "m", 1.0, keyed=True), 1.1, Outcome.OVERLOADED, retry_after_s=2.0)
    for keyed in (False, True):
        plain = r.pick(RouteRequest(("m",), keyed=keyed), 1.2)
        opted = r.pick(RouteRequest(("m",), keyed=keyed, keepers=True), 1.2)
        assert plain.verdict is opted.verdict is Verdict.SATURATED
        assert opted.wait_s == plain.wait_s
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.keeps_prompts("a", frozenset({"m"}))
    r.finish(r.begin("a", "m", 1.0, keyed=True), 1.1, Outcome.OVERLOADED, retry_after_s=30.0)
    both = r.pick(RouteRequest(("m",), keyed=True, keepers=True), 1.2)
    assert both.verdict is Verdict.SATURATED and both.wait_s == plain.wait_s


def test_a_keyed_request_naming_its_nodes_finds_them_among_the_kept_ones() -> None:
    """No node open: a keyed request with ``allow_nodes`` or ``deny_nodes`` draws from the
    kept nodes under its own constraints."""
    r = Router(rng=random.Random(1))
    for nid in ("b", "c", "d"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=1, max_queue=8)
        r.begin(nid, "m", 1.0, keyed=True)
        r.finish(r.begin(nid, "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=2.0)
    assert r.pool_counts("m") == (0, 3, 0)
    named = RouteRequest(("m",), keyed=True, allow_nodes=frozenset({"c"}))
    assert {r.pick(named, 1.3).node_id for _ in range(20)} == {"c"}
    denied = RouteRequest(("m",), keyed=True, deny_nodes=frozenset({"b", "d"}))
    assert {r.pick(denied, 1.3).node_id for _ in range(20)} == {"c"}
