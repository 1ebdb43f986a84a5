"""A node that refuses with 503 (draining, paused) is not a saturated node: while it is the
only node of a model, every request gets 503 ``model_unavailable`` with ``Retry-After``,
streamed or not, first or later (found 2026-12-05: the first got 503, the next 429
``overloaded`` "saturated": the router held the node as full). docs/security.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.registry.helpers import running
from tests.registry.test_access import bearer, new_key
from tests.registry.test_send import CHAT, chat


@pytest.mark.parametrize("first_stream", [False, True])
async def test_the_only_node_draining_gives_503_to_every_request(
    tmp_path: Path, first_stream: bool
) -> None:
    async with running(tmp_path) as h:
        node = await h.register("draining", behavior="503")
        node.retry_after = "7"
        for stream in (first_stream, not first_stream, first_stream):
            r = await h.client.post(CHAT, json=chat(stream=stream))
            assert r.status_code == 503, (stream, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "model_unavailable", err
            assert 1 <= int(r.headers["retry-after"]) <= 7, r.headers


async def test_a_keyed_request_that_waits_gets_503_too(tmp_path: Path) -> None:
    """The opt-in wait (``X-Mesh-Wait``) ends as a request without it would: 503."""
    async with running(tmp_path) as h:
        await h.register("draining", behavior="503")
        key, _ = await new_key(h, name="payer")
        wait = {"X-Mesh-Wait": "0.5", **bearer(key)}
        for stream in (False, True, False):
            r = await h.client.post(CHAT, json=chat(stream=stream), headers=wait)
            assert r.status_code == 503, (stream, r.text)
            assert r.json()["error"]["code"] == "model_unavailable"
            assert int(r.headers["retry-after"]) >= 1


async def test_a_saturated_node_still_gives_429(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("busy", behavior="429")
        for stream in (False, True):
            r = await h.client.post(CHAT, json=chat(stream=stream))
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "overloaded"
