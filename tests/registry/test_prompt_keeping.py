"""A node that may keep prompts (``keeps_no_prompts: false`` in its signed registration, or
an undeclared ``openai`` engine: ``core/prompt_keeping.py``) gets no user's prompt unless
the request (``allow_prompt_keeping``) or its API key opts in: not on the first pick, nor on
a failover, nor on a stream continued elsewhere; a canary probe, pinned, still reaches it
(found 2026-12-06, attack33; docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.api_keys import create_api_key
from tests.registry.helpers import FakeNode, Harness, fund, rank, registration, running

MODEL = "gemma-3-270m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "my secret"}]}


async def keeper(h: Harness, node_id: str = "keeper", **kw: Any) -> FakeNode:
    """A node declaring that it may keep prompts (an ``openai`` engine's default)."""
    return await h.register(node_id, keeps_no_prompts=False, **kw)


async def register_engine(h: Harness, node_id: str, engine: str) -> FakeNode:
    """A node that declares nothing (an older node) serving ``MODEL`` on ``engine``."""
    node = h.nodes.add(node_id)
    reg = registration(node_id) | {"models": [{"id": MODEL, "engine": engine}]}
    r = await h.client.post("/mesh/nodes", json=reg)
    assert r.status_code == 200, r.text
    return node


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_keeping_node_gets_no_prompt_by_default(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path) as h:
        kept = await keeper(h)
        clean = await h.register("clean", keeps_no_prompts=True)
        older = await h.register("older")  # undeclared, sim: as its own default says
        rank(h.runtime.routing.router, ["keeper", "clean", "older"], MODEL, h.clock())
        for _ in range(12):
            r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert r.status_code == 200, r.text
        assert kept.calls == []
        assert len(clean.calls) + len(older.calls) == 12


@pytest.mark.parametrize("behavior", ["500", "connect_error", "503"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_failover_never_lands_on_a_prompt_keeping_node(
    tmp_path: Path, behavior: str, stream: bool
) -> None:
    async with running(tmp_path, max_attempts=5) as h:
        kept = [await keeper(h, f"keeper{i}") for i in range(3)]
        bad = await h.register("bad", behavior=behavior, keeps_no_prompts=True)
        for _ in range(3):
            await h.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert bad.calls
        assert [n.calls for n in kept] == [[], [], []]


async def test_only_prompt_keeping_nodes_a_clear_503_that_says_how_to_opt_in(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        kept = await keeper(h)
        undeclared = await register_engine(h, "upstream", "openai")  # older openai node
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "model_unavailable" and err["prompt_keeping"] == 2
        assert "2 nodes serving it may keep prompts" in err["message"]
        assert "allow_prompt_keeping: true" in err["message"]
        assert "--allow-keep" in err["message"]
        assert r.headers["x-should-retry"] == "false"  # no retry helps without the opt-in
        assert kept.calls == [] and undeclared.calls == []


async def test_the_request_opts_in(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        kept = await keeper(h)
        body = {**CHAT, "allow_prompt_keeping": True}
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert len(kept.calls) == 1
        assert "allow_prompt_keeping" not in kept.calls[0]["body"]  # stripped
        bad = await h.client.post("/v1/chat/completions", json={**CHAT, "allow_prompt_keeping": 1})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "allow_prompt_keeping"


async def test_the_api_key_opts_in(tmp_path: Path) -> None:
    from LLM_Mesh.core.ledger_entry import pseudonym

    async with running(tmp_path) as h:
        kept = await keeper(h)
        made = await create_api_key(h.store, name="fine-with-it", allow_prompt_keeping=True)
        plain = await create_api_key(h.store, name="careful")
        assert made is not None and plain is not None
        for _key, rec in (made, plain):
            await fund(h, pseudonym("user", rec.key_id))
        stored = await h.store.api_key_by_hash(made[1].key_hash)
        assert stored is not None and stored.allow_prompt_keeping
        auth = {"Authorization": f"Bearer {made[0]}"}
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert r.status_code == 200, r.text
        assert len(kept.calls) == 1
        auth = {"Authorization": f"Bearer {plain[0]}"}
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert r.status_code == 503 and len(kept.calls) == 1


async def test_a_canary_probe_still_reaches_a_prompt_keeping_node(tmp_path: Path) -> None:
    """Probes are pinned to their node, and their prompts are the probes' own."""
    from tests.registry.canary_mesh import LogprobNodes, register, run_round, trust

    async with running(tmp_path, nodes=LogprobNodes()) as h:
        await register(h, "verifier")
        node = h.nodes.add("keeper")
        reg = {"node_id": "keeper", "url": "http://keeper:8801", "keeps_no_prompts": False,
               "models": [{"id": MODEL, "engine": "openai", "sha256": "a" * 64}]}  # fmt: skip
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        await trust(h, "verifier")
        results = {r["node_id"]: r for r in await run_round(h, node="keeper")}
        assert results["keeper"]["verdict"] == "pass", results
        assert node.calls


async def test_a_stream_continued_after_a_break_never_goes_to_a_prompt_keeping_node(
    tmp_path: Path,
) -> None:
    import httpx

    from tests.registry.helpers import FakeNodes, sse_chunks
    from tests.registry.test_midstream import Dies, completion_chunks

    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "first":  # breaks mid-answer: another node continues it
            head = completion_chunks("first", model, ["Once", " upon"])[:2]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        return httpx.Response(
            200, headers=sse, content=b"".join(sse_chunks(model, node.node_id, [" a", " time"]))
        )

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=5) as h:
        first = await h.register("first", keeps_no_prompts=True)
        kept = [await keeper(h, f"keeper{i}") for i in range(3)]
        body = {"model": MODEL, "prompt": "hi", "max_tokens": 8, "stream": True}
        for _ in range(3):
            await h.client.post("/v1/completions", json=body)
        assert first.calls
        assert [n.calls for n in kept] == [[], [], []]
        later = await h.register("later")
        for _ in range(3):
            await h.client.post("/v1/completions", json=body)
        assert [n.calls for n in kept] == [[], [], []]
        assert later.calls  # the continuations went there
