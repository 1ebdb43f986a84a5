"""The node table: index, health by heartbeat age and active checks, load, EWMAs."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration, NodeState
from LLM_Mesh.registry.node_table import NodeTable
from tests.registry.helpers import ManualClock


def reg(node_id: str, *models: str, **kw: Any) -> NodeRegistration:
    return NodeRegistration.model_validate(
        {
            "node_id": node_id,
            "url": f"http://{node_id}",
            "models": [{"id": m} for m in models],
            **kw,
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def table(clock: ManualClock) -> NodeTable:
    return NodeTable(30.0, clock)


def test_index_finds_candidates_per_model(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.register(reg("b", "m2"))
    assert [c.node_id for c in table.candidates_for("m1")] == ["a"]
    assert sorted(c.node_id for c in table.candidates_for("m2")) == ["a", "b"]
    assert table.candidates_for("nope") == []
    assert table.models_up() == ["m1", "m2"]
    table.register(reg("a", "m3"))  # re-registration re-indexes
    assert table.model_ids() == ["m2", "m3"]


def test_heartbeat_expiry(table: NodeTable, clock: ManualClock) -> None:
    table.register(reg("a", "m"))
    clock.advance(29.9)
    assert table.models_up() == ["m"]
    clock.advance(0.1)
    assert table.models_up() == []
    assert table.heartbeat("a", Heartbeat())
    assert table.models_up() == ["m"]
    assert not table.heartbeat("ghost", Heartbeat())


def test_states_and_checks(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    for state in (NodeState.PAUSED, NodeState.DRAINING, NodeState.OFFLINE, NodeState.JOINING):
        table.set_state("a", state)
        assert table.candidates_for("m") == []
    table.set_state("a", NodeState.ONLINE)
    table.set_check_result("a", False)
    assert table.candidates_for("m") == []
    assert table.views()[0].health_score == 0.0
    table.set_check_result("a", True)
    assert len(table.candidates_for("m")) == 1


def test_unloaded_models_are_not_routed(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.heartbeat("a", Heartbeat(loaded_models=["m1"]))
    assert table.models_up() == ["m1"]


def test_load_and_ewmas(table: NodeTable) -> None:
    table.register(reg("a", "m", max_concurrency=1, max_queue=1))
    table.begin("a")
    assert table.candidates_for("m")[0].in_flight == 1
    table.end("a", ok=True, latency_ms=100.0, ttft_ms=10.0, tokens=5)
    table.begin("a")
    table.end("a", ok=True, latency_ms=200.0, ttft_ms=20.0)
    e = table.get("a")
    assert e is not None
    assert e.in_flight == 0 and e.requests == 2 and e.tokens_generated == 5
    assert e.latency_ms_ewma == pytest.approx(120.0)
    assert e.ttft_ms_ewma == pytest.approx(12.0)
    table.begin("a")
    table.end("a", ok=False)
    assert e.failures == 1 and e.health_score == pytest.approx(0.8)
    assert e.latency_ms_ewma == pytest.approx(120.0)  # failures do not move latency
    table.begin("a")
    table.release("a")
    assert e.in_flight == 0 and e.requests == 3
    v = table.views()[0]
    assert v.requests == 3 and v.failures == 1 and v.latency_ms_ewma == pytest.approx(120.0)


def test_saturated_candidate(table: NodeTable) -> None:
    table.register(reg("a", "m", max_concurrency=1, max_queue=0))
    table.begin("a")
    assert table.candidates_for("m")[0].saturated


def test_custom_models_are_the_non_catalog_ones(table: NodeTable) -> None:
    table.register(reg("a", "gemma-3-270m", "mine"))
    assert list(table.custom_models()) == ["mine"]
    assert table.hosts("mine") and not table.hosts("other")


def test_registration_keeps_stats(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    table.begin("a")
    table.end("a", ok=True, latency_ms=5.0)
    table.register(reg("a", "m"))
    e = table.get("a")
    assert e is not None and e.requests == 1 and e.latency_ms_ewma == 5.0


def test_never_heard_node_is_not_healthy(table: NodeTable) -> None:
    table.register(reg("a", "m"), last_heartbeat=None)
    assert table.models_up() == []
    assert table.views()[0].last_heartbeat_age_s is None
    assert table.sweep_expired() == ["a"]


def test_bad_expiry() -> None:
    with pytest.raises(ValueError):
        NodeTable(0)


def test_seed_counters(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    table.seed_counters(
        {"a": {"requests": 7, "failures": 2, "tokens": 99}, "gone": {"requests": 1}}
    )
    v = table.views()[0]
    assert v.requests == 7 and v.failures == 2
