"""The parse stage holds a request to the context the mesh serves its model with *now*:
the largest a live node serving it declares (at most the catalog's; the catalog's when
none does), ``registry/listing.served``; the send stage's refusal, when every node a
request may use is too small, names the largest of them. Found 2026-12-06 (context34):
``node info`` said 4096 (the node's ``n_ctx``), ``models`` 32768 (the catalog's), ``ask
--max-tokens 9999999`` "exceeds 32768" (the mesh's cap on max_tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.limits import RequestLimits
from tests.registry.helpers import Harness, rank, running

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = "gemma-3-270m"  # catalog context: 32,768 tokens


async def add(h: Harness, node_id: str, context: int | None) -> None:
    h.nodes.add(node_id)
    hosted = {"id": MODEL, "engine": "sim", "simulated": True}
    if context is not None:
        hosted["context_length"] = context
    reg = {"node_id": node_id, "url": f"http://{node_id}:8801", "models": [hosted]}
    r = await h.client.post("/mesh/nodes", json=reg)
    assert r.status_code == 200, r.text


def chat(content: str = "", **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **kw}


async def post(h: Harness, body: dict[str, Any], path: str = CHAT) -> Any:
    content = json.dumps(body).encode()
    return await h.client.post(path, content=content, headers={"content-type": "application/json"})


def refusal(r: Any, param: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    err: dict[str, Any] = r.json()["error"]
    assert (err["code"], err["param"]) == ("context_length_exceeded", param), err
    return err


async def test_max_tokens_past_the_live_nodes_context_is_refused_saying_it(
    tmp_path: Path,
) -> None:
    """Before: the refusal said "gemma-3-270m's context length of 4096 tokens" while every
    listing said 32768, with nothing on whose 4096 it was nor what to do."""
    async with running(tmp_path) as h:
        await add(h, "small", 4096)
        r = await post(h, chat(max_tokens=4096))  # the boundary: the whole context
        assert r.status_code == 200, r.text
        err = refusal(await post(h, chat(max_tokens=5000)), "max_tokens")
        assert err["message"] == (
            "max_tokens=5000 exceeds gemma-3-270m's context length of 4096 tokens, the "
            "largest a live node serving it declares now (the model's own: 32768); ask for "
            "fewer tokens (the prompt and max_tokens together must fit 4096)"
        )
        assert err["context_length"] == 4096  # for a program to read
        assert h.nodes.calls() == 1  # the refusal called none


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [(CHAT, "max_tokens", chat()), (CHAT, "max_completion_tokens", chat()),
     (COMPLETIONS, "max_tokens", {"model": MODEL, "prompt": "hi"})],
)  # fmt: skip
async def test_max_tokens_past_the_mesh_cap_says_the_served_context(
    tmp_path: Path, path: str, field: str, body: dict[str, Any]
) -> None:
    """Before: ``ask --max-tokens 9999999`` said "exceeds 32768, the most tokens one
    request may ask for" (the schema's cap) of a model served with 4096 tokens."""
    async with running(tmp_path) as h:
        await add(h, "small", 4096)
        err = refusal(await post(h, {**body, field: 9_999_999}, path), field)
        assert err["message"].startswith(
            f"{field}=9999999 exceeds gemma-3-270m's context length of 4096 tokens"
        ), err
        assert err["context_length"] == 4096
        assert h.nodes.calls() == 0


async def test_the_cap_is_said_where_it_is_the_smaller_figure(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "whole", None)  # the catalog's 32768: the cap (32768) is no larger
        r = await post(h, chat(max_tokens=9_999_999))
        assert r.status_code == 400 and "the most tokens one request" in r.text, r.text


async def test_the_prompt_estimate_is_held_to_the_served_context(tmp_path: Path) -> None:
    limits = RequestLimits(max_content_chars=1_000_000)
    async with running(tmp_path, limits=limits) as h:
        await add(h, "small", 4096)
        r = await post(h, chat("x" * 6 * 4095, max_tokens=1))  # ~4095 tokens + 1: fits
        assert r.status_code == 200, r.text
        err = refusal(await post(h, chat("x" * 6 * 4096, max_tokens=1)), "messages")
        assert "4096 tokens, the largest a live node" in err["message"]
        assert err["message"].endswith("shorten the prompt or lower max_tokens"), err


async def test_the_largest_live_node_sets_the_limit(tmp_path: Path) -> None:
    """A request the larger node holds passes parse and is routed to it, the smaller node
    skipped; a node no longer live counts for nothing."""
    async with running(tmp_path) as h:
        await add(h, "small", 4096)
        await add(h, "mid", 8192)
        rank(h.runtime.routing.router, ["small", "mid"], MODEL, h.clock())
        r = await post(h, chat(max_tokens=6000))
        assert r.status_code == 200, r.text
        assert len(h.nodes.nodes["mid:8801"].calls) == 1 and not h.nodes.nodes["small:8801"].calls
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # both stop beating
        await add(h, "small", 4096)  # small beats again, mid does not
        err = refusal(await post(h, chat(max_tokens=6000)), "max_tokens")
        assert "4096 tokens, the largest a live node" in err["message"]


async def test_every_node_the_request_may_use_too_small_names_the_largest(
    tmp_path: Path,
) -> None:
    """A request narrowed to nodes whose contexts are all too small (a larger one is up):
    before, the refusal named the first skipped node's context (100), said as the model's."""
    async with running(tmp_path) as h:
        await add(h, "s100", 100)
        await add(h, "s200", 200)
        await add(h, "big", None)
        rank(h.runtime.routing.router, ["s100", "s200", "big"], MODEL, h.clock())
        r = await post(h, chat(max_tokens=300, allow_nodes=["s100", "s200"]))
        err = refusal(r, "max_tokens")
        assert "200 tokens, the largest of the nodes this request may use" in err["message"]
        assert err["context_length"] == 200
        assert h.nodes.calls() == 0


async def test_a_stale_served_figure_still_meets_the_chosen_nodes_own_check(
    tmp_path: Path,
) -> None:
    """review34b: the parse stage's figure may be up to a second old (``ServedContexts``):
    a larger node gone within it lets a request too long for every node left pass parse.
    The send stage's check of the chosen node's own context still refuses it (400, no node
    called), so a stale figure never sends a node more than it declared."""
    async with running(tmp_path) as h:
        await add(h, "small", 4096)
        cache, table = h.runtime.served_contexts, h.runtime.table
        cache.ttl_s = 10**6  # the figure of a larger node gone since, still within its time
        cache._hits[(MODEL, 32768)] = (table.changes, table.clock(), 8192)
        r = await post(h, chat(max_tokens=6000))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "context_length_exceeded"
        assert "4096" in r.json()["error"]["message"]
        assert not h.nodes.nodes["small:8801"].calls
        del cache._hits[(MODEL, 32768)]  # without the stale figure: parse refuses the same
        refusal(await post(h, chat(max_tokens=6000)), "max_tokens")
