"""Keyed before anonymous at a busy node, end to end: the real registry + gateway app and a
real sim node (its app, its admission queue, its gateway check) in process
(``tests/inprocess_mesh.py``). The node runs one request at a time (``max_concurrency``
1, the common gemma node); while it is busy, three anonymous requests queue at it, then a
keyed one comes: the node serves the keyed one next (``mesh_priority`` in the gateway's
signed body, core/priority.py; found 2026-12-05: it waited behind every anonymous request
queued there, docs/security.md, "Users and API keys")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD, kept_places
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh, SimNode
from tests.waiting import SOON_S, scaled

MODEL = "gemma-3-270m"


async def _until(predicate: Callable[[], bool], timeout: float = SOON_S) -> None:
    end = time.monotonic() + scaled(timeout)  # a fixed 10 s before flakes40
    while not predicate():  # polling state the mesh's apps own
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.001)


def _held_node(mesh: InProcessMesh, node_id: str) -> tuple[SimNode, asyncio.Event, list[str]]:
    """A node whose sim holds every request until the gate opens, and the last message of
    each request it starts, in the order it starts them."""
    gate = asyncio.Event()  # bound to the mesh's loop when first awaited there

    async def held(_seconds: float) -> None:  # the sim's sleeps: until the gate opens
        await gate.wait()

    node = mesh.add_node(MODEL, node_id, sleep=held)
    started: list[str] = []
    stream_batches = node.engine.stream_batches

    def recording(req: GenerationRequest, cancel: Any) -> AsyncIterator[list[Delta]]:
        started.append(str((req.messages or [{}])[-1].get("content")))
        return stream_batches(req, cancel)

    node.engine.stream_batches = recording  # type: ignore[method-assign]
    return node, gate, started


async def _keyed_headers(mesh: InProcessMesh) -> dict[str, str]:
    """A new API key's ``Authorization`` header, its account granted enough for the test."""
    made = await create_api_key(mesh.store)
    assert made is not None
    ledger = mesh.app.state.runtime.ledger
    await ledger.append_one(Transfer("grant", MINT, user_account(made[1].key_id), 10**12))
    return {"Authorization": f"Bearer {made[0]}"}


async def _ask(c: httpx.AsyncClient, label: str, headers: dict[str, str]) -> httpx.Response:
    body = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": label}]}
    return await c.post("/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_a_keyed_request_is_answered_before_the_anonymous_ones_queued_at_the_node(
    inprocess_mesh: InProcessMesh,
) -> None:
    """The mesh's settings are ``up``'s (no anonymous bounds, so no anonymous share: one
    gateway process lets anonymous requests fill the node's queue, as several replicas
    each within its own share do)."""
    mesh = inprocess_mesh
    node, gate, started = _held_node(mesh, "busy-node")
    adm = node.service.admission

    async def scenario() -> list[httpx.Response]:
        keyed = await _keyed_headers(mesh)
        async with httpx.AsyncClient(transport=mesh.router, base_url=REGISTRY_URL) as c:
            tasks = [asyncio.create_task(_ask(c, "busy", {}))]
            await _until(lambda: adm.in_flight == 1 and started == ["busy"])
            for i in (1, 2, 3):
                tasks.append(asyncio.create_task(_ask(c, f"anon-{i}", {})))
                await _until(lambda i=i: adm.queued == i)
            tasks.append(asyncio.create_task(_ask(c, "keyed", keyed)))
            await _until(lambda: adm.queued == 4)
            gate.set()
            return list(await asyncio.gather(*tasks))

    answers = mesh.call(scenario())
    assert [r.status_code for r in answers] == [200] * 5, [r.text for r in answers]
    assert started == ["busy", "keyed", "anon-1", "anon-2", "anon-3"]
    # what told the node: the keyed request's body, signed by the gateway; no other's
    classes = {
        str(s.body["messages"][0]["content"]): s.body.get(PRIORITY_FIELD)
        for s in mesh.router.forwarded
    }
    assert classes == {"busy": None, "anon-1": None, "anon-2": None, "anon-3": None,
                       "keyed": KEYED}  # fmt: skip


def test_an_anonymous_flood_that_fills_the_line_leaves_a_keyed_request_a_place(
    inprocess_mesh: InProcessMesh,
) -> None:
    """The node keeps the last places of its line for keyed requests and the gateway's
    router knows it: anonymous requests beyond the others are refused (429), and a keyed
    one that comes after them is still served, first (found 2026-12-05: the full line
    refused it, then the router held the node full for every request after an anonymous
    request's 429, docs/security.md)."""
    mesh = inprocess_mesh
    node, gate, started = _held_node(mesh, "flooded-node")
    adm = node.service.admission
    free = adm.max_queue - kept_places(adm.max_queue)  # 6 of the default 8

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        keyed = await _keyed_headers(mesh)
        async with httpx.AsyncClient(transport=mesh.router, base_url=REGISTRY_URL) as c:
            tasks = [asyncio.create_task(_ask(c, "busy", keyed))]  # keyed: places kept now
            await _until(lambda: adm.in_flight == 1 and started == ["busy"])
            for i in range(1, free + 1):
                tasks.append(asyncio.create_task(_ask(c, f"anon-{i}", {})))
                await _until(lambda i=i: adm.queued == i)
            refused = []
            for i in (1, 2):  # the flood goes on: refused, by the node then by the router
                t = asyncio.create_task(_ask(c, f"over-{i}", {}))
                await _until(lambda t=t: t.done() or adm.queued > free)
                assert t.done(), "an anonymous request took a kept place"
                refused.append(t.result())
            tasks.append(asyncio.create_task(_ask(c, "keyed", keyed)))
            await _until(lambda: adm.queued == free + 1)
            gate.set()
            return list(await asyncio.gather(*tasks)), refused

    answers, refused = mesh.call(scenario())
    assert [r.status_code for r in refused] == [429, 429], [r.text for r in refused]
    assert [r.status_code for r in answers] == [200] * (free + 2), [r.text for r in answers]
    assert started == ["busy", "keyed", *(f"anon-{i}" for i in range(1, free + 1))]
