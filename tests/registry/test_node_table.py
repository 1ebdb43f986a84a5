"""The node table: index, health by heartbeat age and active checks, counters, continuation."""

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


def up(table: NodeTable, model: str) -> list[str]:
    return sorted(e.node_id for e in table.healthy_entries_for(model))


def test_index_finds_candidates_per_model(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.register(reg("b", "m2"))
    assert up(table, "m1") == ["a"]
    assert up(table, "m2") == ["a", "b"]
    assert up(table, "nope") == []
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
        assert up(table, "m") == []
    table.set_state("a", NodeState.ONLINE)
    table.set_check_result("a", False)
    assert up(table, "m") == []
    table.set_check_result("a", True)
    assert up(table, "m") == ["a"]


def test_unloaded_models_are_not_routed(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.heartbeat("a", Heartbeat(loaded_models=["m1"]))
    assert table.models_up() == ["m1"]


def test_counters(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    table.count("a", ok=True, tokens=5)
    table.count("a", ok=False)
    table.count("ghost", ok=True)
    e = table.get("a")
    assert e is not None and e.requests == 2 and e.failures == 1 and e.tokens_generated == 5


def test_heartbeat_uptime_and_continuation(table: NodeTable) -> None:
    table.register(reg("a", "m", continuation=True))
    table.register(reg("b", "m"))
    table.register(NodeRegistration.model_validate(
        {"node_id": "c", "url": "http://c", "models": [{"id": "m", "continuation": True}]}
    ))  # fmt: skip
    assert table.supports_continuation("a", "m") and table.supports_continuation("c", "m")
    assert not table.supports_continuation("b", "m") and not table.supports_continuation("x", "m")
    table.heartbeat("a", Heartbeat.model_validate({"uptime": 1.7}))
    e = table.get("a")
    assert e is not None and e.uptime == 1.0


def test_custom_models_are_the_non_catalog_ones(table: NodeTable) -> None:
    table.register(reg("a", "gemma-3-270m", "mine"))
    assert list(table.custom_models()) == ["mine"]
    assert table.hosts("mine") and not table.hosts("other")


def test_registration_keeps_stats(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    table.count("a", ok=True, tokens=3)
    table.register(reg("a", "m"))
    e = table.get("a")
    assert e is not None and e.requests == 1 and e.tokens_generated == 3


def test_never_heard_node_is_not_healthy(table: NodeTable) -> None:
    table.register(reg("a", "m"), last_heartbeat=None)
    assert table.models_up() == []
    assert table.sweep_expired() == ["a"]


def test_bad_expiry() -> None:
    with pytest.raises(ValueError):
        NodeTable(0)


def test_seed_counters(table: NodeTable) -> None:
    table.register(reg("a", "m"))
    table.seed_counters(
        {"a": {"requests": 7, "failures": 2, "tokens": 99}, "gone": {"requests": 1}}
    )
    e = table.get("a")
    assert e is not None and e.requests == 7 and e.failures == 2
