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
from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

MODEL = "gemma-3-270m"


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # polling state the mesh's apps own
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.001)


def test_a_keyed_request_is_answered_before_the_anonymous_ones_queued_at_the_node(
    inprocess_mesh: InProcessMesh,
) -> None:
    """The mesh's settings are ``up``'s (no anonymous bounds, so no anonymous share: one
    gateway process lets anonymous requests fill the node's queue, as several replicas
    each within its own share do)."""
    mesh = inprocess_mesh
    gate = asyncio.Event()  # bound to the mesh's loop when first awaited there

    async def held(_seconds: float) -> None:  # the sim's sleeps: until the gate opens
        await gate.wait()

    node = mesh.add_node(MODEL, "busy-node", sleep=held)
    started: list[str] = []
    stream_batches = node.engine.stream_batches

    def recording(req: GenerationRequest, cancel: Any) -> AsyncIterator[list[Delta]]:
        started.append(str((req.messages or [{}])[-1].get("content")))
        return stream_batches(req, cancel)

    node.engine.stream_batches = recording  # type: ignore[method-assign]
    adm = node.service.admission

    async def scenario() -> list[httpx.Response]:
        made = await create_api_key(mesh.store)
        assert made is not None
        ledger = mesh.app.state.runtime.ledger
        await ledger.append_one(Transfer("grant", MINT, user_account(made[1].key_id), 10**12))
        keyed = {"Authorization": f"Bearer {made[0]}"}
        async with httpx.AsyncClient(transport=mesh.router, base_url=REGISTRY_URL) as c:

            async def ask(label: str, headers: dict[str, str]) -> httpx.Response:
                body = {"model": MODEL, "max_tokens": 4,
                        "messages": [{"role": "user", "content": label}]}  # fmt: skip
                return await c.post("/v1/chat/completions", json=body, headers=headers,
                                    timeout=30)  # fmt: skip

            tasks = [asyncio.create_task(ask("busy", {}))]
            await _until(lambda: adm.in_flight == 1 and started == ["busy"])
            for i in (1, 2, 3):
                tasks.append(asyncio.create_task(ask(f"anon-{i}", {})))
                await _until(lambda i=i: adm.queued == i)
            tasks.append(asyncio.create_task(ask("keyed", keyed)))
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
