"""Every replica, and a restarted one, routes to a node as its signed ``keeps_no_prompts``
declared (``core/prompt_keeping.py``): the store keeps the declaration (``nodes.keeps_no_prompts``,
migration 0029), read by the node poll (``registry/node_sync.py``) and at start
(``registry/snapshot.load_nodes``).

Found 2026-12-06 (private33's open gap): the store did not keep it, so a replica that learnt
the node from the store, or had restarted, judged it by its engine: a ``llama-cpp`` node that
declared ``keeps_no_prompts: false`` got prompts that did not opt in through that replica
until it registered there again. docs/security.md, "Privacy: no prompt, no output is kept"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNode, Harness, registration, running
from tests.registry.test_shared_idempotency import two_replicas

MODEL = "gemma-3-270m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "my secret"}]}


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None: one MemoryStore both replicas share; else a PostgreSQL database both open (not
    SQLite: replicas on one SQLite file are not supported, test_shared_idempotency.py)."""
    if request.param == "memory":
        return None
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


def declaring(node_id: str, engine: str, declared: bool | None) -> dict[str, Any]:
    """A registration of ``node_id``, its model on ``engine``, declaring ``keeps_no_prompts``
    ``declared`` (None: it says nothing, as an older replica passes one on: it knows no such
    field)."""
    reg = registration(node_id) | {"models": [{"id": MODEL, "engine": engine}]}
    return reg if declared is None else reg | {"keeps_no_prompts": declared}


async def register_declaring(
    h: Harness, engine: str, declared: bool | None, node_id: str
) -> FakeNode:
    """``node_id`` registered at ``h`` as :func:`declaring` says (200), its fake node added
    if new."""
    node = h.nodes.nodes.get(f"{node_id}:8801") or h.nodes.add(node_id)
    r = await h.client.post("/mesh/nodes", json=declaring(node_id, engine, declared))
    assert r.status_code == 200, r.text
    return node


async def register_llama(h: Harness, declared: bool | None, node_id: str = "n1") -> FakeNode:
    """A ``llama-cpp`` node (whose engine keeps nothing) declaring ``keeps_no_prompts``."""
    return await register_declaring(h, "llama-cpp", declared, node_id)


async def assert_only_opt_in_reaches(h: Harness, node: FakeNode) -> None:
    """A default request at ``h`` does not reach ``node``; one that opts in does."""
    r = await h.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code != 200, r.text
    assert node.calls == []
    r = await h.client.post("/v1/chat/completions", json={**CHAT, "allow_prompt_keeping": True})
    assert r.status_code == 200, r.text
    assert len(node.calls) == 1


async def test_a_replica_that_learnt_the_node_from_the_store_keeps_its_declaration(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()  # this test polls b itself
        node = await register_llama(a, declared=False)
        await sync.poll()  # b learns the node from the store
        assert b.table.get("n1") is not None
        assert b.table.get("n1").keeps_no_prompts is False  # type: ignore[union-attr]
        await assert_only_opt_in_reaches(b, node)


async def test_a_declaration_changed_at_one_replica_reaches_the_other(
    tmp_path: Path, store_url: str | None
) -> None:
    """The node re-registers at A with nothing else changed but its declaration: B follows."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()
        await register_llama(a, declared=True)
        await sync.poll()
        r = await b.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text  # keeps nothing: a default request goes there
        node = await register_llama(a, declared=False)
        node.calls.clear()
        await sync.poll()
        await assert_only_opt_in_reaches(b, node)


@pytest.fixture(params=["memory", "sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def restart_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None: one MemoryStore kept over the restart; else a database opened again."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


async def test_a_restarted_replica_keeps_the_declaration(
    tmp_path: Path, restart_url: str | None
) -> None:
    shared = MemoryStore()

    def store() -> MemoryStore:
        return SqlStore(restart_url) if restart_url else shared  # type: ignore[return-value]

    async with running(tmp_path / "first", store=store()) as h:
        node = await register_llama(h, declared=False)
    async with running(tmp_path / "again", store=store(), nodes=h.nodes) as h2:
        assert h2.table.get("n1") is not None
        assert h2.table.get("n1").keeps_no_prompts is False  # type: ignore[union-attr]
        await assert_only_opt_in_reaches(h2, node)
