"""App wiring and lifespan: store opened and closed, stored nodes loaded, restarts."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.schemas import NodeRegistration
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.lone_idempotency import LoneIdempotency
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings, registration, running


async def test_lifespan_opens_and_closes(tmp_path: Path) -> None:
    store = MemoryStore()
    app = create_registry_app(make_settings(tmp_path), store=store)
    async with app.router.lifespan_context(app):
        assert store.opened and not store.closed
        rt = app.state.runtime
        assert rt.client is not None and rt.owns_client  # its own pooled client
        client = rt.client
    assert store.closed
    assert client.is_closed and rt.client is None


async def test_restart_keeps_nodes_and_counters(tmp_path: Path) -> None:
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        await h.register("node-a")
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200
    assert len(store.requests) == 1  # the writer flushed on shutdown
    async with running(tmp_path, store=store) as h2:
        # heard from seconds ago: routable at once, without re-registering
        assert h2.table.models_up() == ["gemma-3-270m"]
        view = (await h2.client.get("/mesh/nodes")).json()["nodes"][0]
        assert view["requests"] == 1 and view["healthy"] is True


async def test_stale_stored_node_waits_for_a_heartbeat(tmp_path: Path) -> None:
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
    store.nodes["node-a"].last_heartbeat_at = datetime.now(timezone.utc) - timedelta(hours=1)
    async with running(tmp_path, store=store) as h2:
        h2.nodes.add("node-a")
        assert h2.table.models_up() == []
        r = await h2.client.post("/mesh/nodes/node-a/heartbeat", json={})
        assert r.status_code == 200
        assert h2.table.models_up() == ["gemma-3-270m"]


async def test_invalid_stored_node_is_skipped(tmp_path: Path) -> None:
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
    store.nodes["node-a"].url = "not a url"
    async with running(tmp_path, store=store) as h2:
        assert len(h2.table) == 0


async def test_default_store_is_sqlite_in_home(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    app = create_registry_app(settings)
    async with app.router.lifespan_context(app):
        pass
    assert (tmp_path / "home" / "registry.db").exists()


async def test_the_reward_task_runs_with_the_app_unless_the_rate_is_zero(tmp_path: Path) -> None:
    on = create_registry_app(make_settings(tmp_path / "on"), store=MemoryStore())
    rewards = on.state.runtime.rewards
    assert rewards is not None and rewards.rate == 100_000 and rewards.period_s == 3600
    assert rewards.grace_s == on.state.runtime.settings.heartbeat_interval_s
    async with on.router.lifespan_context(on):
        assert rewards._task is not None and not rewards._task.done()
    assert rewards._task is None  # stopped with the app
    off = create_registry_app(make_settings(tmp_path / "off", reward_rate=0), store=MemoryStore())
    assert off.state.runtime.rewards is None
    assert rewards.uptime_nodes == 4  # an operator's uptime cap: its documented default
    one = create_registry_app(
        make_settings(tmp_path / "one", reward_uptime_nodes=1), store=MemoryStore()
    )
    assert one.state.runtime.rewards is not None and one.state.runtime.rewards.uptime_nodes == 1


async def test_a_registry_on_sqlite_runs_alone_and_its_polls_check_for_changes(
    tmp_path: Path,
) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    async with running(tmp_path / "sqlite", store=store) as h:  # type: ignore[arg-type]
        # replicas on SQLite are not supported: no beat, node poll or shared keys
        assert h.app.state.node_sync is None and h.runtime.replicas is None
        # its keys in its process; its SDK attempts' ends also in the store, read after a
        # restart (lone_idempotency.py, since 2026-12-05)
        assert type(h.runtime.idempotency) is LoneIdempotency
        polls = h.app.state.store_polls
        assert set(polls) == {"revocations", "api_keys", "quality"}
        assert polls["api_keys"] is h.runtime.keys
        for topic, poller in polls.items():
            assert poller.changes is not None
            assert poller.changes() == store.poll_version(topic) is not None
    async with running(tmp_path / "memory", store=MemoryStore()) as h:
        assert h.app.state.node_sync is not None and h.runtime.replicas is not None
        assert isinstance(h.runtime.idempotency, SharedIdempotency)
        assert h.runtime.keys.changes is None  # the memory store cannot tell: every second


def test_the_health_upkeep_forgets_the_pins_of_a_url_no_node_has_any_more(
    inprocess_mesh: Any,
) -> None:
    """The app hangs ``AddressPins.retain`` over the table's URLs on the health loop: a
    node that registered again under another URL leaves no pins behind at the next pass."""
    node = inprocess_mesh.add_node("mistral-7b")
    rt = inprocess_mesh.app.state.runtime
    old = node.url + "/v1/completions"

    async def move_and_upkeep() -> tuple[bool, bool]:
        before = rt.pins.admitted(old)
        entry = rt.table.get(node.node_id)
        moved = NodeRegistration(
            node_id=entry.node_id,
            url="http://moved.nodes.test:8801",
            models=list(entry.models.values()),
        )
        rt.table.register(moved)
        inprocess_mesh.app.state.health.upkeep()
        return before, rt.pins.admitted(old)

    assert inprocess_mesh.call(move_and_upkeep()) == (True, False)


async def test_a_replica_with_another_registry_key_says_so_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica started without the others' ``registry.key`` made one of its own and said
    nothing (found 2026-12-04: only the nodes' logs told, refusing its requests); now a
    WARNING at start naming both keys. The same key again: nothing."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    url = f"sqlite:///{tmp_path / 'registry.db'}"

    async def start(key: Ed25519PrivateKey) -> None:
        async with running(tmp_path / "home", store=SqlStore(url), gateway_key=key):  # type: ignore[arg-type]
            pass

    await start(first)
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.app")
    await start(first)
    assert not [r for r in caplog.records if "is new to this store" in r.getMessage()]
    await start(second)
    warned = [r.getMessage() for r in caplog.records if "is new to this store" in r.getMessage()]
    assert len(warned) == 1 and "1 other key(s)" in warned[0]


async def test_the_start_lines_keep_the_app_s_logger_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The split of ``app.py`` (``app_keys.py``) kept its log lines' logger, as the other
    splits do (found 2026-12-04, review: ``gateway …, public key …`` came from
    ``LLM_Mesh.registry.app_keys``, missed by a filter or level set on the app's)."""
    caplog.set_level(logging.INFO)
    async with running(tmp_path):
        pass
    (name,) = {r.name for r in caplog.records if "nodes may pin it" in r.getMessage()}
    assert name == "LLM_Mesh.registry.app"
