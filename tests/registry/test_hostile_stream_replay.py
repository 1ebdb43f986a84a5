"""attack32c: a hostile user's or node's attempts on a kept SDK stream's replay
(``relay.SseRelay.keep``, ``idempotency.IdempotencyCache.keep_stream``).

Each attack held (no defect): a node's ``[DONE]`` before its final usage chunk leaves
nothing to replay (its retry 409, never a second run; a usage chunk then a close is whole,
paid and replayed as sent); a retry of another body, of another path, or a new first attempt (count 0)
of the same bytes is never handed the kept stream; a count that is not the SDK's runs as
an ordinary request. Fake nodes only.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks
from tests.registry.test_charge import BODY, CHAT, new_user, register
from tests.registry.test_sdk_retry_replay import attempt

STREAM = json.dumps({**BODY, "stream": True}).encode()


def _forged(cut: str) -> FakeNodes:
    """A node whose stream is complete but for its end: ``done_first`` sends ``[DONE]``
    before its usage chunk, ``no_done`` its usage chunk and then closes."""
    nodes = FakeNodes()

    def stream(node: FakeNode, model: str) -> httpx.Response:
        parts = sse_chunks(model, node.node_id, node.words)
        usage, done = parts[-2], parts[-1]
        body = parts[:-2] + ([done, usage] if cut == "done_first" else [usage])
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b"".join(body))  # fmt: skip

    nodes.stream_factory = stream
    return nodes


async def test_a_nodes_done_before_its_usage_is_never_replayed(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=_forged("done_first")) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert first.status_code == 200 and '"usage"' not in first.text, first.text
        retry = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 1))
        assert "x-mesh-replayed" not in retry.headers and retry.status_code == 409, retry.text
        assert len(node.calls) == 1  # never run twice either


async def test_a_usage_chunk_then_close_is_whole_paid_and_replayed_as_sent(tmp_path: Path) -> None:
    """The final usage chunk is the node's end (the gateway writes ``[DONE]``): paid, so
    its retry gets the same bytes, never a second run."""
    async with running(tmp_path, nodes=_forged("no_done")) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert '"cost"' in first.text and first.text.endswith("data: [DONE]\n\n")
        retry = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 1))
        assert retry.headers.get("x-mesh-replayed") == "true" and retry.content == first.content
        assert len(node.calls) == 1


async def test_another_body_path_or_a_first_attempt_is_never_handed_the_kept_stream(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert first.status_code == 200 and "[DONE]" in first.text
        other_body = json.dumps({**BODY, "stream": True, "max_tokens": 7}).encode()
        spaced = STREAM + b" "  # the same JSON, other bytes: another request
        for body in (other_body, spaced):
            r = await h.client.post(CHAT, content=body, headers=attempt(key, 1))
            assert r.status_code == 200 and "x-mesh-replayed" not in r.headers, r.text
        alias = await h.client.post(
            CHAT.replace("/v1", "", 1), content=STREAM, headers=attempt(key, 1)
        )
        assert "x-mesh-replayed" not in alias.headers, alias.text
        fresh = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert fresh.status_code == 200 and "x-mesh-replayed" not in fresh.headers
        for count in ("1x", "-1", "99999"):  # not the SDK's count: an ordinary request
            r = await h.client.post(CHAT, content=STREAM,
                                    headers={**attempt(key, None), "x-stainless-retry-count": count})  # fmt: skip
            assert r.status_code == 200 and "x-mesh-replayed" not in r.headers, (count, r.text)
        runs = len(node.calls)
        replay = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 1))
        assert replay.headers.get("x-mesh-replayed") == "true"  # the fresh attempt's stream
        assert len(node.calls) == runs
