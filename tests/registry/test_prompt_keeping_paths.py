"""Attack pass (2026-12-06, keepers34): every path by which a request's prompt could reach a
node that may keep prompts (``keeps_no_prompts: false``, or undeclared on an ``openai``
engine: ``core/prompt_keeping.py``) without the request or its key opting in. The paths
tried before (the first pick, a failover of each kind, a stream continued elsewhere, a
canary probe) are in ``test_prompt_keeping.py``; here: ``/v1/completions`` unstreamed,
``n`` > 1 and a list of prompts, a second opinion after a node's refusal, a retried request
under the same ``Idempotency-Key``, a model id the keeping node alone lists (a catalog
alias is not resolved by the router: a name is routed as written), and an undeclared
``openai`` node beside a declared one. Each expects no call at any such node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.limits import RequestLimits
from tests.registry.helpers import FakeNode, Harness, registration, running

MODEL = "gemma-3-270m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "my secret"}]}
COMPLETION = {"model": MODEL, "prompt": "my secret", "max_tokens": 8}


async def keepers(h: Harness, n: int = 3, models: list[str] | None = None) -> list[FakeNode]:
    """``n`` nodes that may keep prompts: declared, and one ``openai`` that declares nothing."""
    out = [await h.register(f"keeper{i}", models, keeps_no_prompts=False) for i in range(n)]
    node = h.nodes.add("upstream")
    ids = models or [MODEL]
    reg = registration("upstream") | {"models": [{"id": m, "engine": "openai"} for m in ids]}
    r = await h.client.post("/mesh/nodes", json=reg)
    assert r.status_code == 200, r.text
    return [*out, node]


def untouched(nodes: list[FakeNode]) -> bool:
    return all(n.calls == [] for n in nodes)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "body",
    [
        COMPLETION,
        {**COMPLETION, "prompt": ["my secret", "another secret"]},  # a batch of prompts
        {**COMPLETION, "n": 3},
        {**CHAT, "n": 3},
    ],
    ids=["completions", "prompt-list", "completions-n3", "chat-n3"],
)
async def test_completions_batches_and_n_never_reach_a_keeping_node(
    tmp_path: Path, body: dict[str, Any], stream: bool
) -> None:
    async with running(tmp_path, max_attempts=5, limits=RequestLimits(max_n=4)) as h:
        kept = await keepers(h)
        clean = await h.register("clean", behavior="500", keeps_no_prompts=True)
        path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        for _ in range(3):
            r = await h.client.post(path, json={**body, "stream": stream})
        if isinstance(body.get("prompt"), list):  # one prompt a request: refused unsent
            assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
            assert clean.calls == []
        else:
            assert clean.calls  # routed, failed, and not moved to a keeping node
        assert untouched(kept)


async def test_a_second_opinion_after_a_refusal_never_goes_to_a_keeping_node(
    tmp_path: Path,
) -> None:
    """A node's own 4xx gets one other node at once (``registry/second_opinion.py``)."""
    async with running(tmp_path, max_attempts=5) as h:
        kept = await keepers(h)
        refuser = await h.register("refuser", behavior="400", keeps_no_prompts=True)
        for _ in range(3):
            r = await h.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 400, r.text  # the refusal itself: no other node
        assert refuser.calls and untouched(kept)


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Request-Id"])
async def test_a_replayed_request_never_reaches_a_keeping_node(tmp_path: Path, header: str) -> None:
    """The same key again, after a 503 (no node that keeps nothing up) and after the clean
    node came back: retried requests are routed as their first try, never to a keeper."""
    async with running(tmp_path) as h:
        kept = await keepers(h)
        headers = {header: "replay-1"}
        for _ in range(2):
            r = await h.client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 503, r.text
        clean = await h.register("clean", keeps_no_prompts=True)
        for key in ("replay-1", "replay-2", "replay-2"):
            r = await h.client.post("/v1/chat/completions", json=CHAT, headers={header: key})
            assert r.status_code in (200, 409), r.text
        assert clean.calls and untouched(kept)


async def test_a_model_only_a_keeping_node_lists_is_not_routed_there(tmp_path: Path) -> None:
    """A catalog alias, or any other id, listed by the keeping nodes alone: 503 and how to
    opt in, never a call (the router routes the name as written; no alias is resolved)."""
    alias = "gemma-270m"
    async with running(tmp_path) as h:
        kept = await keepers(h, models=[MODEL, alias])
        clean = await h.register("clean", keeps_no_prompts=True)
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "model": alias})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["prompt_keeping"] == len(kept)
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text
        assert len(clean.calls) == 1 and untouched(kept)
        r = await h.client.post(
            "/v1/chat/completions", json={**CHAT, "model": alias, "allow_prompt_keeping": True}
        )
        assert r.status_code == 200, r.text  # the guard: opted in, it goes there
        assert not untouched(kept)
