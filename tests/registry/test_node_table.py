"""The node table: index, health by heartbeat age and active checks, counters, continuation."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.schemas import (
    MAX_MODELS_PER_NODE,
    Heartbeat,
    HostedModel,
    NodeRegistration,
    NodeState,
)
from LLM_Mesh.registry.node_table import (
    NodeTable,
    check_answer,
    cold_starts_ms,
    load_time_ms,
    loaded_models,
)
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


def test_unloaded_models_are_still_hosted(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.heartbeat("a", Heartbeat(loaded_models=["m1"]))
    assert table.models_up() == ["m1", "m2"]  # m2 could be loaded
    assert up(table, "m2") == ["a"]
    assert table.healthy_entries_for("m2", loaded_only=True) == []
    assert [e.node_id for e in table.healthy_entries_for("m1", loaded_only=True)] == ["a"]
    assert loaded_models(table.get("a")) == ["m1"]  # type: ignore[arg-type]


def test_heartbeat_models_list_updates_loaded_and_load_times(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2", "m3"))
    hb = Heartbeat.model_validate({"models": [
        {"id": "m1", "loaded": True, "load_time_s": 0.0},
        {"id": "m2", "loaded": False, "load_time_s": 2.5, "continuation": True},
        {"id": "ghost", "loaded": True},  # not registered: ignored
        "junk", {"no_id": 1}, {"id": "m3", "loaded": "maybe"},  # malformed: skipped
    ]})  # fmt: skip
    assert table.heartbeat("a", hb)
    e = table.get("a")
    assert e is not None
    assert e.models["m1"].loaded and not e.models["m2"].loaded and e.models["m3"].loaded
    assert set(e.models) == {"m1", "m2", "m3"} and not table.hosts("ghost")
    assert cold_starts_ms(e) == {"m2": 2500.0}  # 0 means "loaded": no estimate
    assert table.supports_continuation("a", "m2") and not table.supports_continuation("a", "m1")
    # the list wins over loaded_models where it speaks; what it leaves out keeps its value
    hb = Heartbeat.model_validate(
        {"loaded_models": ["m2"], "models": [{"id": "m1", "loaded": True}, {"id": "m2"}]}
    )
    table.heartbeat("a", hb)
    assert loaded_models(e) == ["m1", "m2"]
    assert e.models["m2"].model_extra == {"load_time_s": 2.5, "continuation": True}
    assert e.models["m1"].engine == "llama-cpp" and e.models["m1"].model_extra == {
        "load_time_s": 0.0
    }


def test_load_time_ms() -> None:
    def hm(**kw: Any) -> HostedModel:
        return HostedModel.model_validate({"id": "m", **kw})

    assert load_time_ms(hm(load_time_s=1.5)) == 1500.0
    for bad in (0, -1, True, "2", None, float("inf")):
        assert load_time_ms(hm(load_time_s=bad)) is None
    assert load_time_ms(hm()) is None


def test_mark_loaded(table: NodeTable) -> None:
    table.register(reg("a", "m1", "m2"))
    table.heartbeat("a", Heartbeat(loaded_models=[]))
    table.mark_loaded("a", "m2")
    table.mark_loaded("a", "nope")
    table.mark_loaded("ghost", "m2")
    assert loaded_models(table.get("a")) == ["m2"]  # type: ignore[arg-type]


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


def test_what_a_nodes_answers_say_of_its_uptime(table: NodeTable) -> None:
    """The send stage's bookkeeping for ``core/rewards.serving``: a 401 stamps
    ``refused_gateway_at``; 429/503s keep the first refusal since the last answer and the
    latest; an answer clears all three. An unknown node is no error."""
    e = table.register(reg("a", "m"))
    table.refused_gateway("a", 100.0)
    table.refused_request("a", 110.0)
    table.refused_request("a", 120.0)
    assert (e.refused_gateway_at, e.refusing_since, e.refused_at) == (100.0, 110.0, 120.0)
    table.answered("a")
    assert (e.refused_gateway_at, e.refusing_since, e.refused_at) == (None, None, None)
    table.refused_request("a", 130.0)
    assert (e.refusing_since, e.refused_at) == (130.0, 130.0)  # counted from its first again
    for ghost in (table.refused_gateway, table.refused_request):
        ghost("ghost", 1.0)
    table.answered("ghost")
    assert "ghost" not in table


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


def test_a_heartbeat_reads_at_most_as_many_model_items_as_a_node_may_host(
    table: NodeTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 MiB of ``models`` items naming a hosted id: each was validated (29,000, ~240 ms of
    the registry's loop per heartbeat, found 2026-12-02); now the first
    ``MAX_MODELS_PER_NODE`` only."""
    table.register(reg("a", "m1"))
    validated: list[int] = []
    real = HostedModel.model_validate

    def counting(obj: Any, *a: Any, **kw: Any) -> HostedModel:
        validated.append(1)
        return real(obj, *a, **kw)

    monkeypatch.setattr(HostedModel, "model_validate", counting)
    items = [{"id": "m1", "loaded": False}] * (MAX_MODELS_PER_NODE * 100)
    assert table.heartbeat("a", Heartbeat.model_validate({"models": items}))
    assert len(validated) == MAX_MODELS_PER_NODE
    assert not table.get("a").models["m1"].loaded  # type: ignore[union-attr]


def test_answers_and_refusals_are_tallied_fading_and_kept_across_a_registration(
    table: NodeTable, clock: ManualClock
) -> None:
    """What cuts a node's uptime credit (``core/rewards.answer_share_milli``): the share of
    requests it answered here, lately; a registration again keeps it (found 2026-12-05,
    attack30: a fresh entry started over, so a node refusing everything registered again
    before each heartbeat and was credited in full), and so the load it last reported."""
    table.register(reg("a", "m"))
    entry = table.get("a")
    assert entry is not None and table.answer_share_milli(entry) == 1000  # sent nothing
    table.tally("a", answered=True)
    for _ in range(9):
        table.tally("a", answered=False)
    assert table.answer_share_milli(entry) == 2 * 1000 // 11
    clock.advance(300)  # one half-life: both counts halve
    assert (entry.answered, entry.refused) == (1.0, 9.0) and table.answer_share_milli(
        entry
    ) == 1500 // 6
    assert (entry.answered, entry.refused) == (0.5, 4.5)
    clock.advance(3000)
    assert table.answer_share_milli(entry) >= 990  # faded: about all again
    table.tally("a", answered=False)
    table.refused_request("a", 4300.0)
    entry.reported_in_flight, entry.reported_queued, entry.known_load = 2, 3, 1
    share = table.answer_share_milli(entry)
    assert share < 510
    table.register(reg("a", "m"))
    fresh = table.get("a")
    assert fresh is not None and fresh is not entry and table.answer_share_milli(fresh) == share
    assert (fresh.refusing_since, fresh.refused_at) == (4300.0, 4300.0)
    assert (fresh.reported_in_flight, fresh.reported_queued, fresh.known_load) == (2, 3, 1)
    table.tally("nobody", answered=False)  # an unknown node: nothing


def test_the_check_state_keeps_since_and_the_last_reason() -> None:
    table = NodeTable(30.0, ManualClock())
    table.register(reg("a", "m"))
    entry = table.get("a")
    assert entry is not None and check_answer(entry) is None  # not checked yet: nothing said
    table.set_check_result("a", False, at=100.0, why="HTTP 503")
    assert check_answer(entry) == {"ok": False, "since": 100.0, "checked_at": 100.0,
                                   "why": "HTTP 503"}  # fmt: skip
    # a failed result with no reason (a store row written before migration 0016): it stays
    table.set_check_result("a", False, at=160.0)
    assert check_answer(entry) == {"ok": False, "since": 100.0, "checked_at": 160.0,
                                   "why": "HTTP 503"}  # fmt: skip
    table.set_check_result("a", True, at=200.0)
    assert check_answer(entry) == {"ok": True, "since": 200.0, "checked_at": 200.0}
    table.set_check_result("a", True, at=500.0)
    assert check_answer(entry) == {"ok": True, "since": 200.0, "checked_at": 500.0}
    table.set_check_result("a", False, at=600.0, why="bad\nline " + "x" * 900)
    said = check_answer(entry)
    assert said is not None and said["since"] == 600.0 and len(said["why"]) == 300
    assert "\n" not in said["why"]
    # another replica's result, with since when and why: what this replica says too
    table.set_check_result("a", False, at=700.0, why="HTTP 502", since=550.0)
    assert check_answer(entry) == {"ok": False, "since": 550.0, "checked_at": 700.0,
                                   "why": "HTTP 502"}  # fmt: skip


def test_registering_again_keeps_what_the_node_is_told_of_its_checks() -> None:
    # a failed check stands across a registration (security.md): so do its since and reason
    table = NodeTable(30.0, ManualClock())
    table.register(reg("a", "m"))
    table.set_check_result("a", False, at=100.0, why="HTTP 503")
    table.register(reg("a", "m"))
    entry = table.get("a")
    assert entry is not None and check_answer(entry) == {
        "ok": False, "since": 100.0, "checked_at": 100.0, "why": "HTTP 503"
    }  # fmt: skip


def test_changes_counts_what_the_listing_shows_at_once(
    table: NodeTable, clock: ManualClock
) -> None:
    """``NodeTable.changes`` (``GET /mesh/nodes`` is built again after one): registrations,
    states, the models loaded, a check's verdict turning, an expiry, a heartbeat after it;
    not a heartbeat that changes only load or age (shown within the listing's second)."""
    table.register(reg("a", "m1", "m2"))
    seen = table.changes

    def bumped() -> bool:
        nonlocal seen
        moved, seen = table.changes != seen, table.changes
        return moved

    assert seen == 1
    table.heartbeat("a", Heartbeat(in_flight=2, queued=1))
    assert not bumped()  # load only
    table.heartbeat("a", Heartbeat(loaded_models=["m1"]))
    assert bumped()
    table.heartbeat("a", Heartbeat(loaded_models=["m1"], in_flight=1))
    assert not bumped()
    table.mark_loaded("a", "m2")
    assert bumped()
    table.mark_loaded("a", "m2")
    assert not bumped()
    table.set_check_result("a", False, at=1.0, why="no proof")
    assert bumped()
    table.set_check_result("a", False, at=2.0, why="no proof")
    assert not bumped()
    table.set_check_result("a", True, at=3.0)
    assert bumped()
    table.heartbeat("a", Heartbeat(state=NodeState.PAUSED, loaded_models=["m1", "m2"]))
    assert bumped()
    table.set_state("a", NodeState.ONLINE)
    assert bumped()
    table.set_state("a", NodeState.ONLINE)
    assert not bumped()
    clock.advance(31.0)
    assert table.sweep_expired() == ["a"] and bumped()
    table.heartbeat("a", Heartbeat(loaded_models=["m1", "m2"]))  # healthy again
    assert bumped()


def test_alive_is_healthy_of_the_entry(table: NodeTable, clock: ManualClock) -> None:
    """``alive`` (the routing pick's re-check) says what ``healthy(get(id), now)`` says."""
    table.register(reg("a", "m"))
    table.register(reg("b", "m"))
    table.register(reg("c", "m"), last_heartbeat=None)
    table.set_state("b", NodeState.DRAINING)

    def both(now: float) -> list[tuple[bool, bool]]:
        out = []
        for nid in ("a", "b", "c", "ghost"):
            e = table.get(nid)
            out.append((table.alive(nid, now), e is not None and table.healthy(e, now)))
        return out

    now = clock()
    assert both(now) == [(True, True), (False, False), (False, False), (False, False)]
    assert both(now + 30.0) == [(False, False)] * 4  # expired
    table.set_state("b", NodeState.ONLINE)
    table.set_check_result("a", False)
    assert both(now) == [(False, False), (True, True), (False, False), (False, False)]
