"""The scoring functions at the inputs that tell a right answer from a near miss
(core/scoring.py; found by mutation testing, session 34): a full node's drain time with
its own service time and a model to load, a hold that has ended, the specialty factor
alone, a request's refusals in words."""

from __future__ import annotations

import math
from array import array

import pytest

from LLM_Mesh.core.queue_wait import queue_wait_s
from LLM_Mesh.core.scoring import (
    NodeStats,
    RouteRequest,
    ScoringPolicy,
    cheapest_rows,
    full_waits,
    node_cost,
    node_row,
    node_wait_s,
)

P = ScoringPolicy()


def full_node(**kw: object) -> NodeStats:
    st = NodeStats("a", ("m", "n"), P, loaded=("m",), max_concurrency=2, max_queue=0,
                   cold_start_ms=30_000.0, model_cold_start_ms={"n": 5_000.0}, **kw)  # type: ignore[arg-type]  # fmt: skip
    st.in_flight = 2
    return st


def test_a_full_nodes_own_service_time_adds_the_models_cold_start_where_not_loaded() -> None:
    st = full_node()
    st.reported_service_ms = 1_000.0
    assert node_wait_s(st, "m", 100, 0.0, P) == queue_wait_s(2, 1.0, 2)
    assert node_wait_s(st, "n", 100, 0.0, P) == queue_wait_s(2, 6.0, 2)  # + n's 5 s
    assert node_wait_s(st, "n", 100, 0.0, P) > node_wait_s(st, "m", 100, 0.0, P) > 0


def test_a_hold_that_has_ended_waits_nothing() -> None:
    st = full_node()
    st.unavailable, st.busy_until = True, 5.0
    assert full_waits([st], "m", 100, 4.0, P) == (None, 1.0)
    assert full_waits([st], "m", 100, 9.0, P) == (None, 0.0)


def test_the_specialty_factor_alone_scales_the_cost() -> None:
    st = full_node()
    st.in_flight = 0
    vals = array("d", node_row(st, "m"))
    _, plain = cheapest_rows(vals, [0], [st], 100, 0.0, P)
    assert plain == node_cost(st, "m", 100, 0.0, P, 1.0)
    for factor in (2.0, 1.5, 0.5):
        assert cheapest_rows(vals, [0], [st], 100, 0.0, P, None, factor) == (0, factor * plain)
    assert math.isfinite(plain) and plain > 0


def test_a_route_requests_refusals_in_words() -> None:
    with pytest.raises(ValueError, match=r"^a route request needs at least one model$"):
        RouteRequest(())
    with pytest.raises(ValueError, match=r"^expected_tokens cannot be negative$"):
        RouteRequest(("m",), expected_tokens=-1)


def test_a_nodes_region_is_kept_as_avoidance_compares_it() -> None:
    assert NodeStats("a", ("m",), P, region=" EU-West ").region == "eu-west"
    assert NodeStats("a", ("m",), P, region="  ").region is None
    assert NodeStats("a", ("m",), P).region is None


def test_a_new_nodes_counts_and_band_before_any_request() -> None:
    from LLM_Mesh.core.route_pools import OPEN, band

    st = NodeStats("a", ("m",), P, max_concurrency=2, max_queue=3)
    assert (st.in_flight, st.anon_in_flight, st.open_below) == (0, 0, 5)
    assert band(st) == OPEN


def test_the_policies_refusals_in_words() -> None:
    with pytest.raises(ValueError, match=r"^priors cannot be negative$"):
        ScoringPolicy(prior_ttft_ms=-1.0)
    with pytest.raises(ValueError, match=r"^penalties must be >= 0 \(stale_penalty >= 1\)$"):
        ScoringPolicy(stale_penalty=0.5)
    with pytest.raises(ValueError, match=r"^need max_concurrency >= 1 and max_queue >= 0$"):
        NodeStats("a", ("m",), P, max_concurrency=0)
