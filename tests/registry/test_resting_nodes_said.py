"""A model whose every node its operator paused or is draining is refused 503 saying so
(found 2026-12-05, newuser32: after ``llm-mesh node pause`` on ``up``'s node, ``llm-mesh
ask`` said only ``no healthy node serves 'gemma-3-270m' right now (models up: none)``, as
if no node hosted it: nothing told the user that it is paused, and comes back)."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_send import CHAT, chat


async def test_the_refusal_says_the_models_nodes_are_paused_or_draining(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        await h.register("n2")
        assert (
            await h.client.post("/mesh/nodes/n1/heartbeat", json={"state": "paused"})
        ).status_code == 200
        assert (
            await h.client.post("/mesh/nodes/n2/heartbeat", json={"state": "draining"})
        ).status_code == 200
        r = await h.client.post(CHAT, json=chat())
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "model_unavailable", err
    assert "2 nodes hosting it are paused or draining" in err["message"], err
    assert err["resting"] == 2, err


async def test_no_such_words_when_none_rests(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1", models=["mistral-7b"])
        r = await h.client.post(CHAT, json=chat())
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert "paused" not in err["message"] and "resting" not in err, err


async def test_a_paused_only_model_says_no_retry_and_how_it_comes_back(tmp_path: Path) -> None:
    """Found 2026-12-06 (newuser35): the refusal said ``x-should-retry: true`` (polish32's
    reading of README: "a paused node may resume"), so ``llm-mesh ask --model`` and
    OpenAI's SDKs waited out two retries, 20 s, for the same 503, while task routing failed
    at once. An operator's pause is not undone within a client's retries: ``false``, and the
    message names the command that brings it back."""
    async with running(tmp_path) as h:
        await h.register("n1")
        assert (
            await h.client.post("/mesh/nodes/n1/heartbeat", json={"state": "paused"})
        ).status_code == 200
        r = await h.client.post(CHAT, json=chat())
    assert r.status_code == 503, r.text
    assert r.headers["x-should-retry"] == "false", r.headers
    assert "until its operator runs `llm-mesh node resume`" in r.json()["error"]["message"]


async def test_a_model_no_node_hosts_still_says_no_retry(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1", models=["mistral-7b"])
        r = await h.client.post(CHAT, json=chat())
    assert r.status_code == 503, r.text
    assert r.headers["x-should-retry"] == "false", r.headers
