"""What of a client's request reaches a community node: never the OpenAI fields that name or
tag the client (``core/withheld.py``), nor any of the client's own headers; a body with
nothing to withhold is forwarded as the client's bytes. Through the real registry app, a
recording fake node (``tests/registry/helpers.py``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.withheld import WITHHELD_FIELDS
from tests.registry.helpers import FakeNode, FakeNodes, running
from tests.registry.test_midstream import Dies, _first_is, completion_chunks

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _body(path: str, stream: bool, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gemma-3-270m", "max_tokens": 8, "stream": stream}
    if path == CHAT:
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "hi"
    return {**body, **extra}


def _identifying(marker: str) -> dict[str, Any]:
    """Every withheld field, each carrying ``marker`` where it can."""
    return {
        "user": f"alice-{marker}",
        "safety_identifier": f"sid-{marker}",
        "prompt_cache_key": f"pck-{marker}",
        "metadata": {"account": f"acct-{marker}"},
        "store": True,
    }  # (web_search_options: refused since 2026-12-05, tests/registry/test_openai_sdk_audit.py)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_client_identifying_fields_never_reach_the_node(
    tmp_path: Path, path: str, stream: bool
) -> None:
    marker = uuid.uuid4().hex
    client_headers = {
        "User-Agent": f"agent-{marker}",
        "Cookie": f"session={marker}",
        "X-Forwarded-For": "203.0.113.7",
        "X-Real-IP": "203.0.113.7",
        "Forwarded": "for=203.0.113.7",
        "Referer": f"https://example.com/{marker}",
    }
    async with running(tmp_path) as h:
        node = await h.register("n1")
        sent = _body(path, stream, temperature=0.5, **_identifying(marker))
        r = await h.client.post(path, json=sent, headers=client_headers)
        assert r.status_code == 200, r.text
        assert ("[DONE]" in r.text) if stream else r.json()["mesh"]["node_id"] == "n1"
        assert len(node.calls) == 1
        call = node.calls[0]
        assert marker.encode() not in call["raw"]
        assert b"203.0.113.7" not in call["raw"]
        assert not set(WITHHELD_FIELDS) & set(call["body"])
        # what the request asked for still reaches it
        assert call["body"]["temperature"] == 0.5 and call["body"]["max_tokens"] == 8
        assert call["body"]["stream"] is stream
        for name, value in call["headers"].items():
            assert marker not in value and "203.0.113.7" not in value, name
        names = {k.lower() for k in call["headers"]}
        assert not {"cookie", "x-forwarded-for", "x-real-ip", "forwarded", "referer"} & names


@pytest.mark.parametrize("field", WITHHELD_FIELDS)
async def test_each_withheld_field_alone_is_stripped(tmp_path: Path, field: str) -> None:
    value = _identifying("x" * 8)[field]
    async with running(tmp_path) as h:
        node = await h.register("n1")
        r = await h.client.post(CHAT, json=_body(CHAT, False, **{field: value}))
        assert r.status_code == 200, r.text
        assert field not in node.calls[0]["body"]


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_a_body_with_nothing_to_withhold_is_forwarded_as_sent(
    tmp_path: Path, path: str
) -> None:
    """The hot path: no field withheld, no extension: the node gets the client's bytes."""
    raw = json.dumps(_body(path, False, temperature=0.25), indent=1).encode()
    async with running(tmp_path) as h:
        node = await h.register("n1")
        r = await h.client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert node.calls[0]["raw"] == raw


async def test_the_node_continuing_a_stream_gets_none_of_them(tmp_path: Path) -> None:
    """A stream continued on another node after the first broke mid-answer gets a body the
    gateway builds (``continuation.py``, from the job's body): stripped too."""
    marker = uuid.uuid4().hex
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "a":
            head = completion_chunks("a", model, ["Once", " upon"])[:2]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        return httpx.Response(
            200, headers=sse, content=b"".join(completion_chunks("b", model, [" a", " time"]))
        )

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        a = await h.register("a")
        b = await h.register("b")
        body = _body(COMPLETIONS, True, **_identifying(marker))
        text = await _first_is(h, "a", "b", body, COMPLETIONS)
        assert " time" in text
        assert (len(a.calls), len(b.calls)) == (1, 1)  # b continued a's stream
        assert b.calls[0]["body"]["prompt"] != "hi"  # the continuation's own body
        for call in a.calls + b.calls:
            assert marker.encode() not in call["raw"]
            assert not set(WITHHELD_FIELDS) & set(call["body"])
