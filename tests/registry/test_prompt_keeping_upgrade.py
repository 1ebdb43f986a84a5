"""A registration whose declaration the store does not tell (a row written before migration
0029, or by a replica of the previous version during a rolling upgrade, which knows no
``keeps_no_prompts`` column) is judged by the node's engines: held out of requests that do
not opt in unless every model runs on ``llama-cpp``/``sim`` (fail closed,
``core/prompt_keeping.py``); a re-registration that declares corrects it, and so does a
heartbeat that declares (the replica answers it 404 ``unknown_node`` while what it holds
differs, and the node registers again at once: ``registry/api.py``).

Found 2026-12-06 (keepers34): a replica that held the node's ``true`` from a registration it
got itself kept it when the node re-registered at an older replica (the row: no declaration),
``node_sync.py``; an ``openai`` node whose operator no longer vouched for its upstream got
prompts that did not opt in through that replica. docs/security.md, "Privacy"."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNode, Harness, registration, running
from tests.registry.test_prompt_keeping_replicas import (
    CHAT,
    MODEL,
    declaring,
    register_declaring,
    store_url,  # noqa: F401 (fixture)
)
from tests.registry.test_shared_idempotency import two_replicas


async def register_openai(h: Harness, declared: bool | None, node_id: str = "up") -> FakeNode:
    """An ``openai`` node (its upstream: another's service) declaring ``declared`` (None: the
    registration says nothing, as an older replica passes it on: it knows no such field)."""
    return await register_declaring(h, "openai", declared, node_id)


async def reaches_by_default(h: Harness, node: FakeNode) -> bool:
    """Whether a request that does not opt in reaches ``node`` (the only node)."""
    before = len(node.calls)
    r = await h.client.post("/v1/chat/completions", json=CHAT)
    assert (r.status_code == 200) == (len(node.calls) > before), r.text
    return len(node.calls) > before


async def test_a_re_registration_at_an_older_replica_is_judged_by_the_engines(
    tmp_path: Path,
    store_url: str | None,  # noqa: F811
) -> None:
    """B held the node's ``true``; it re-registers at A, which does not tell a declaration:
    B judges it by its engine (openai: held out), until a registration declares again."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()  # this test polls b itself
        node = await register_openai(b, declared=True)
        assert await reaches_by_default(b, node)  # the operator vouches for its upstream
        await register_openai(a, declared=None)  # as an older replica writes the row
        await sync.poll()
        assert b.table.get("up").keeps_no_prompts is None  # type: ignore[union-attr]
        assert not await reaches_by_default(b, node)  # fail closed
        await register_openai(a, declared=True)  # the node registers again, declaring
        await sync.poll()
        assert await reaches_by_default(b, node)


async def test_a_held_false_stays_when_the_row_tells_nothing(
    tmp_path: Path,
    store_url: str | None,  # noqa: F811
) -> None:
    """The other way: a ``llama-cpp`` node that declared ``false`` at B stays held out at B
    after it re-registers at an older replica (the stricter of the two is kept)."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()
        node = await register_declaring(b, "llama-cpp", False, "lc")
        reg = declaring("lc", "llama-cpp", None)  # tells nothing
        assert (await a.client.post("/mesh/nodes", json=reg)).is_success
        await sync.poll()
        assert not await reaches_by_default(b, node)


def _as_an_older_replica_writes(db: Path, node_id: str) -> None:
    """What a 0028 replica's upsert moves: ``changed_at`` and ``tls_at``, not ``keeps_at``."""
    engine = sa.create_engine(f"sqlite:///{db}")
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE nodes SET changed_at = :t, tls_at = :t WHERE node_id = :n"),
            {"t": now, "n": node_id},
        )
    engine.dispose()


async def test_a_row_an_older_replica_wrote_fails_closed_and_a_declaring_heartbeat_fixes_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "registry.db"
    async with running(tmp_path / "first", store=SqlStore(f"sqlite:///{db}")) as h:
        node = await register_openai(h, declared=True)
        assert await reaches_by_default(h, node)
    _as_an_older_replica_writes(db, "up")
    store = SqlStore(f"sqlite:///{db}")
    async with running(tmp_path / "again", store=store, nodes=h.nodes) as h2:
        assert h2.table.get("up").keeps_no_prompts is None  # type: ignore[union-attr]
        assert not await reaches_by_default(h2, node)  # judged by its engine: openai
        url = "/mesh/nodes/up/heartbeat"
        # an older node declares nothing in its heartbeat: answered as ever (no loop)
        assert (await h2.client.post(url, json={})).status_code == 200
        # a node that declares: told to register again, while the replica holds otherwise
        r = await h2.client.post(url, json={"keeps_no_prompts": True})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node", r.text
        assert not await reaches_by_default(h2, node)  # not routed on a heartbeat's word
        await register_openai(h2, declared=True)  # the node's answer to the 404
        assert (await h2.client.post(url, json={"keeps_no_prompts": True})).status_code == 200
        assert await reaches_by_default(h2, node)
        stored = await store.get_node("up")
        assert stored is not None and stored.keeps_no_prompts is True


async def test_an_undeclared_row_of_keeps_nothing_engines_is_routed(tmp_path: Path) -> None:
    """The other side of the rule: an undeclared node whose every model runs on
    ``llama-cpp``/``sim`` keeps nothing (the node's own default), routed as before."""
    async with running(tmp_path) as h:
        node = await register_declaring(h, "llama-cpp", None, "lc")
        assert await reaches_by_default(h, node)
        mixed = registration("lc") | {
            "models": [{"id": MODEL, "engine": "llama-cpp"}, {"id": "other", "engine": "openai"}]
        }
        assert (await h.client.post("/mesh/nodes", json=mixed)).is_success
        assert not await reaches_by_default(h, node)  # one model elsewhere: held out


@pytest.mark.parametrize("declared", [True, False])
async def test_a_heartbeat_agreeing_with_the_registration_is_answered(
    tmp_path: Path, declared: bool
) -> None:
    async with running(tmp_path) as h:
        await register_openai(h, declared=declared)
        r = await h.client.post("/mesh/nodes/up/heartbeat", json={"keeps_no_prompts": declared})
        assert r.status_code == 200, r.text
        r = await h.client.post("/mesh/nodes/up/heartbeat", json={"keeps_no_prompts": not declared})
        assert r.status_code == 404, r.text


def test_a_real_node_whose_declaration_the_registry_lost_registers_again(
    inprocess_mesh: Any,
) -> None:
    """End to end (a sim node, SIMULATED, and its real agent): the registry's entry tells no
    declaration (as after a row an older replica wrote), so the node, a ``sim`` one that
    declared ``false``, gets requests that do not opt in; its next heartbeat is answered
    404, its agent registers again at once, and it is held out again."""
    mesh = inprocess_mesh
    node = mesh.add_node(MODEL, "declares", keeps_no_prompts=False)
    rt = mesh.app.state.runtime
    node_id = mesh.id_of("declares")

    async def lose_the_declaration() -> None:
        entry = rt.table.get(node_id)
        entry.keeps_no_prompts = None
        rt.routing.upsert(entry)

    async def default_request() -> int:
        async with mesh.client() as client:
            r = await client.post("/v1/chat/completions", json=CHAT)
            return r.status_code

    mesh.call(lose_the_declaration())
    assert mesh.call(default_request()) == 200  # judged by its engine (sim): routed
    agent = node.service.agent
    assert agent is not None
    mesh.call(agent.step())  # a heartbeat: 404, then at once a registration
    assert agent.registered
    assert rt.table.get(node_id).keeps_no_prompts is False
    assert mesh.call(default_request()) == 503
