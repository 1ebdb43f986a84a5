"""The canary tables (migration 0009) on SQLite and PostgreSQL, and the MemoryStore's twin."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.store import SqlStore

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sql", "memory"])
def any_store(request: pytest.FixtureRequest, store: SqlStore) -> Store:
    """The SQL store (each dialect) and the MemoryStore: the same behaviour."""
    return MemoryStore() if request.param == "memory" else store


A, B = "a" * 64, "b" * 64


async def _marks(store: Store) -> dict[str, dict[str, str]]:
    return {v.node_id: v.models for v in await store.list_verifiers()}


async def test_verifiers_are_marked_once_per_file(any_store: Store) -> None:
    assert await any_store.list_verifiers() == []
    assert await any_store.trust_verifier("node-b", {"m": A}, T0)
    assert await any_store.trust_verifier("node-a", {"m": A}, T0)
    assert not await any_store.trust_verifier("node-a", {"m": A}, T0 + timedelta(seconds=1))
    assert await _marks(any_store) == {"node-a": {"m": A}, "node-b": {"m": A}}
    assert [v.trusted_at for v in await any_store.list_verifiers()] == [T0, T0]


async def test_a_mark_adds_models_and_takes_a_models_new_file(any_store: Store) -> None:
    """verifier43: marks name model files; marking again adds to them (another model), or
    replaces a model's sha256 (the admin checked its new file), the time of the last kept."""
    t1 = T0 + timedelta(seconds=1)
    assert await any_store.trust_verifier("n", {"m": A}, T0)
    assert await any_store.trust_verifier("n", {"m2": B}, t1)
    assert await _marks(any_store) == {"n": {"m": A, "m2": B}}
    assert await any_store.trust_verifier("n", {"m": B}, t1)
    assert await _marks(any_store) == {"n": {"m": B, "m2": B}}
    (mark,) = await any_store.list_verifiers()
    assert mark.trusted_at == t1


async def test_a_mark_keeps_its_time_until_unmarked_or_its_file_changes(any_store: Store) -> None:
    """verifier44: the time a file was marked names the mark (``registry/canary.py`` keeps a
    reference under it): the same file marked again keeps it; another file, or the file
    unmarked and marked again, is a mark of its own."""
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    assert await any_store.trust_verifier("n", {"m": A, "m2": B}, T0)
    assert not await any_store.trust_verifier("n", {"m": A.upper()}, t1)  # the same file
    assert [v.marked for v in await any_store.list_verifiers()] == [{"m": T0, "m2": T0}]
    assert await any_store.trust_verifier("n", {"m": B}, t1)  # another file under m
    assert [v.marked for v in await any_store.list_verifiers()] == [{"m": t1, "m2": T0}]
    assert await any_store.untrust_verifier("n", ["m"])
    assert await any_store.trust_verifier("n", {"m": B}, t2)  # unmarked, marked again
    (mark,) = await any_store.list_verifiers()
    assert (mark.models, mark.marked, mark.trusted_at) == (
        {"m": B, "m2": B},
        {"m": t2, "m2": T0},
        t2,
    )
    assert not await any_store.trust_verifier("other", {}, t2)  # no file: no mark
    assert [v.node_id for v in await any_store.list_verifiers()] == ["n"]


async def test_a_verifier_is_unmarked_once(any_store: Store) -> None:
    """``registry nodes untrust`` (cli42): the mark gone, ``False`` when there was none."""
    assert await any_store.trust_verifier("node-a", {"m": A}, T0)
    assert await any_store.trust_verifier("node-b", {"m": A}, T0)
    assert await any_store.untrust_verifier("node-a")
    assert not await any_store.untrust_verifier("node-a")
    assert not await any_store.untrust_verifier("node-c")
    assert await _marks(any_store) == {"node-b": {"m": A}}
    assert await any_store.trust_verifier("node-a", {"m": A}, T0 + timedelta(seconds=1))
    assert sorted(await _marks(any_store)) == ["node-a", "node-b"]


async def test_models_are_unmarked_one_by_one(any_store: Store) -> None:
    """``untrust --model``: those models only; the last one gone, the node is no verifier."""
    assert await any_store.trust_verifier("n", {"m": A, "m2": B}, T0)
    assert not await any_store.untrust_verifier("n", ["m3"])
    assert not await any_store.untrust_verifier("other", ["m"])
    assert await any_store.untrust_verifier("n", ["m"])
    assert await _marks(any_store) == {"n": {"m2": B}}
    assert await any_store.untrust_verifier("n", ["m2"])
    assert await any_store.list_verifiers() == []


async def test_passes_count_and_a_failure_quarantines_keeping_the_first_reason(
    any_store: Store,
) -> None:
    r = await any_store.record_canary("n1", "m", ok=True, reason=None, at=T0)
    assert (r.passed, r.failed, r.quarantined) == (1, 0, False)
    t1 = T0 + timedelta(seconds=5)
    r = await any_store.record_canary("n1", "m", ok=False, reason="token at 0", at=t1)
    assert (r.passed, r.failed, r.quarantined_at, r.reason) == (1, 1, t1, "token at 0")
    r = await any_store.record_canary("n1", "m", ok=False, reason="later", at=t1 + timedelta(1))
    assert (r.failed, r.quarantined_at, r.reason) == (2, t1, "token at 0")
    other = await any_store.record_canary("n1", "m2", ok=True, reason=None, at=t1)
    assert not other.quarantined
    recs = await any_store.canary_records()
    assert [(x.node_id, x.model, x.quarantined) for x in recs] == [
        ("n1", "m", True),
        ("n1", "m2", False),
    ]


async def test_clear_lifts_every_quarantine_of_the_node_and_is_seen_by_since(
    any_store: Store,
) -> None:
    await any_store.record_canary("n1", "a", ok=False, reason="x", at=T0)
    await any_store.record_canary("n1", "b", ok=False, reason="y", at=T0)
    await any_store.record_canary("n2", "a", ok=False, reason="z", at=T0)
    t1 = T0 + timedelta(minutes=1)
    assert await any_store.clear_quarantine("n1", t1) == ["a", "b"]
    assert await any_store.clear_quarantine("n1", t1) == []
    changed = await any_store.canary_records(since=t1)
    assert [(x.node_id, x.model, x.quarantined) for x in changed] == [
        ("n1", "a", False),
        ("n1", "b", False),
    ]
    still = [x for x in await any_store.canary_records() if x.quarantined]
    assert [(x.node_id, x.model) for x in still] == [("n2", "a")]
    # counts survive a clear
    assert {x.failed for x in await any_store.canary_records()} == {1}


async def test_an_operators_quarantined_nodes(any_store: Store) -> None:
    """What registration asks before it takes a new key (``node_auth``): the operator's
    nodes under quarantine, none of another operator's, none cleared."""
    for node_id, op in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
        await any_store.claim_node_key(node_id, f"key-{node_id}", op, 1, T0)
    await any_store.record_canary("a1", "m", ok=True, reason=None, at=T0)
    assert await any_store.quarantined_nodes_of("alice") == []
    for model in ("m", "m2"):  # two models: the node once
        await any_store.record_canary("a2", model, ok=False, reason="x", at=T0)
    await any_store.record_canary("b1", "m", ok=False, reason="x", at=T0)
    await any_store.record_canary("ghost", "m", ok=False, reason="x", at=T0)  # no key
    assert await any_store.quarantined_nodes_of("alice") == ["a2"]
    assert await any_store.quarantined_nodes_of("bob") == ["b1"]
    assert await any_store.quarantined_nodes_of("carol") == []
    await any_store.clear_quarantine("a2", T0 + timedelta(seconds=1))
    assert await any_store.quarantined_nodes_of("alice") == []


async def test_held_nodes_are_the_quarantined_and_their_operators_others(any_store: Store) -> None:
    """What settlement and the reward task hold (``registry/held.py``): every node of an
    operator with a quarantined node (its spares too), a quarantined node without a key,
    no node of another operator; none once the quarantines are cleared."""
    for node_id, op in (("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("b1", "bob")):
        await any_store.claim_node_key(node_id, f"key-{node_id}", op, 1, T0)
    assert await any_store.held_nodes() == []
    await any_store.record_canary("a1", "m", ok=True, reason=None, at=T0)
    assert await any_store.held_nodes() == []
    await any_store.record_canary("a2", "m", ok=False, reason="x", at=T0)
    await any_store.record_canary("ghost", "m", ok=False, reason="x", at=T0)  # no key
    assert await any_store.held_nodes() == ["a1", "a2", "a3", "ghost"]
    await any_store.clear_quarantine("a2", T0 + timedelta(seconds=1))
    assert await any_store.held_nodes() == ["ghost"]
