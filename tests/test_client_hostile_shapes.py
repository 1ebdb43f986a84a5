"""``MeshClient`` and the seed API against a gateway that answers what it likes: not JSON,
JSON nested 50,000 deep, JSON of another shape, or a redirect to another host.

Found 2026-12-04: a raw ``JSONDecodeError``, ``RecursionError``, ``KeyError``,
``TypeError`` or ``AttributeError`` reached the user's code (``models()``,
``get_model_info()``, ``handle_task``); now :class:`UpstreamError` in words, and a
redirect is never followed (httpx.MockTransport).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from LLM_Mesh import distributed_models as dm
from LLM_Mesh.client import MeshClient, fetch_json_sync
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import UpstreamError
from LLM_Mesh.mesh_manager import MeshManager

BASE = "http://gw.test"
OTHER = "http://other.test"
DEEP = b"[" * 50_000  # (within the 64 KiB a ping reads; 1,000 deep is past Python's)
DEEP_OBJECT = b'{"nodes": ' + DEEP + b"}"

Handler = Callable[[httpx.Request], httpx.Response]

# what a hostile gateway answers, and what the error says
HOSTILE: dict[str, tuple[httpx.Response, str]] = {
    "html": (httpx.Response(200, content=b"<html>hi</html>"), "is not JSON"),
    "deep": (httpx.Response(200, content=DEEP), "nested too deep"),
    "deep inside": (httpx.Response(200, content=DEEP_OBJECT), "nested too deep"),
    "a list": (httpx.Response(200, json=[1, 2]), "is a list, not a JSON object"),
    "a string": (httpx.Response(200, json="ok"), "is a string, not a JSON object"),
    "redirect": (
        httpx.Response(302, headers={"Location": OTHER + "/mesh/nodes"}),
        "redirect (HTTP 302) to 'http://other.test/mesh/nodes': not followed",
    ),
    "invalid utf-8": (httpx.Response(200, content=b'{"a": "\xff"}'), "is not JSON"),
}
# ... and for a listing (``{"nodes": [...]}``, ``{"models": [...]}``)
ROWS: dict[str, tuple[Any, str]] = {
    "rows a string": ({"nodes": "abc", "models": "abc"}, "is a string, not a list of rows"),
    "rows missing": ({}, "is null, not a list of rows"),
    "a row a number": ({"nodes": [1], "models": [1]}, "row 0 is a number, not an object"),
    "a row without its id": ({"nodes": [{}], "models": [{"id": 7}]}, "row 0 has no"),
}


def hostile(answer: httpx.Response, seen: list[httpx.Request] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.host != "gw.test":  # a redirect followed: must never happen
            return httpx.Response(200, json={"nodes": [], "models": [], "status": "ok"})
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return handler


def mesh_client(handler: Handler, base: str | list[str] = BASE, **kw: Any) -> MeshClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), **kw)
    return MeshClient(base, http_client=http)


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("call", ["ping", "nodes", "models", "balance", "completion"])
async def test_a_hostile_answer_is_an_upstream_error_in_words(kind: str, call: str) -> None:
    answer, words = HOSTILE[kind]
    seen: list[httpx.Request] = []
    # a caller's own client that follows redirects: the mesh's calls still do not
    async with mesh_client(hostile(answer, seen), follow_redirects=True) as c:
        with pytest.raises(UpstreamError) as info:
            if call == "completion":
                await c.completion({"model": "m", "prompt": "p"})
            else:
                await getattr(c, call)()
    assert words in str(info.value)
    assert "gw.test" in str(info.value)  # which gateway said it
    assert [r.url.host for r in seen] == ["gw.test"]  # never to another host


@pytest.mark.parametrize("kind", list(ROWS))
@pytest.mark.parametrize("call", ["nodes", "models"])
async def test_a_listing_of_another_shape_is_an_upstream_error(kind: str, call: str) -> None:
    body, words = ROWS[kind]
    async with mesh_client(hostile(httpx.Response(200, json=body))) as c:
        with pytest.raises(UpstreamError, match=words):
            await getattr(c, call)()


async def test_an_error_answer_nested_too_deep_is_its_status_error() -> None:
    async with mesh_client(hostile(httpx.Response(500, content=DEEP))) as c:
        with pytest.raises(UpstreamError, match="HTTP 500"):
            await c.models()


@pytest.mark.parametrize("kind", ["redirect", "html", "deep", "a list", "rows a string"])
async def test_a_malformed_answer_fails_over_to_the_next_gateway(kind: str) -> None:
    answer = HOSTILE[kind][0] if kind in HOSTILE else httpx.Response(200, json=ROWS[kind][0])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "gw.test":
            return answer
        return httpx.Response(200, json={"models": [{"id": "m", "available": True}]})

    async with mesh_client(handler, [BASE, "http://gw2.test"]) as c:
        assert await c.models() == [{"id": "m", "available": True}]
        assert c.failovers == 1
        assert c.base_url == "http://gw2.test"
    assert seen == ["gw.test", "gw2.test"]


async def test_a_completion_with_its_request_id_fails_over_too() -> None:
    ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids.append(request.headers.get("x-request-id"))
        if request.url.host == "gw.test":
            return httpx.Response(200, json=["not", "an", "answer"])
        return httpx.Response(200, json={"choices": [{"text": "hi"}]})

    async with mesh_client(handler, [BASE, "http://gw2.test"]) as c:
        out = await c.completion({"model": "m", "prompt": "p"})
    assert out["choices"][0]["text"] == "hi"
    assert len(ids) == 2 and ids[0] is not None and ids[0] == ids[1]  # at most once


async def test_a_post_without_request_id_is_not_sent_twice() -> None:
    """An admin POST (no request id) that got a malformed answer may have run: not retried."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, content=b"nope")

    async with mesh_client(handler, [BASE, "http://gw2.test"]) as c:
        with pytest.raises(UpstreamError, match="is not JSON"):
            await c._request("POST", "/mesh/health-check")
    assert seen == ["gw.test"]


def sse(*lines: bytes) -> bytes:
    return b"".join(b"data: " + line + b"\n\n" for line in lines)


@pytest.mark.parametrize(
    ("event", "words"),
    [(b"[1, 2]", "not a JSON object"), (b'"text"', "not a JSON object"), (DEEP, "not JSON")],
)
async def test_a_stream_event_of_another_shape_is_an_upstream_error(
    event: bytes, words: str
) -> None:
    answer = httpx.Response(200, content=sse(event, b"[DONE]"))
    async with mesh_client(hostile(answer)) as c:
        with pytest.raises(UpstreamError, match=words):
            async for _ in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                pass


async def test_a_stream_redirect_is_not_followed_and_fails_over() -> None:
    seen: list[str] = []
    good = sse(json.dumps({"choices": [{"text": "hi"}]}).encode(), b"[DONE]")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "gw.test":
            return httpx.Response(307, headers={"Location": OTHER + "/v1/completions"})
        return httpx.Response(200, content=good)

    async with mesh_client(handler, follow_redirects=True) as c:
        with pytest.raises(UpstreamError, match="redirect"):
            async for _ in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                pass
    async with mesh_client(handler, [BASE, "http://gw2.test"], follow_redirects=True) as c:
        chunks = [x async for x in c.stream("/v1/completions", {"model": "m", "prompt": "p"})]
    assert chunks[-1] == {"choices": [{"text": "hi"}]}
    assert "other.test" not in seen


# --- the seed API -------------------------------------------------------------------------


def registry(handler: Handler) -> DistributedModelRegistry:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DistributedModelRegistry(registry_url=BASE, http_client=http)


@pytest.mark.parametrize("kind", [*HOSTILE, *ROWS])
async def test_the_seed_calls_say_upstream_error(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = HOSTILE[kind][0] if kind in HOSTILE else httpx.Response(200, json=ROWS[kind][0])
    handler = hostile(answer)
    reg = registry(handler)
    with pytest.raises(UpstreamError):
        await reg.initialize()
    if kind in HOSTILE:  # (a listing's odd rows are an answer's object still)
        with pytest.raises(UpstreamError):
            await reg.get_response("m", "def fibonacci(n):", "python")
    with pytest.raises(UpstreamError):
        await MeshManager(reg).handle_task_async("debug", {"code": "x", "error": "y"})
    sync = functools.partial(fetch_json_sync, transport=httpx.MockTransport(handler))
    monkeypatch.setattr(dm, "fetch_json_sync", sync)
    with pytest.raises(UpstreamError):
        reg.get_model_info()


async def test_get_model_info_reads_a_nodes_odd_model_list_as_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/mesh/models":
            return httpx.Response(200, json={"models": [{"id": "m", "available": True}]})
        nodes = [{"node_id": "a", "models": "m"}, {"node_id": "b", "models": [1, {"id": "m"}]}]
        return httpx.Response(200, json={"nodes": nodes})

    sync = functools.partial(fetch_json_sync, transport=httpx.MockTransport(handler))
    monkeypatch.setattr(dm, "fetch_json_sync", sync)
    info = registry(handler).get_model_info("m")
    assert [h["node_id"] for h in info["hosts"]] == ["b"]


async def test_the_admin_proof_reads_a_deep_answer_as_no_proof() -> None:
    from LLM_Mesh.admin_proof import prove
    from LLM_Mesh.errors import InvalidCredential

    deep = httpx.Response(200, content=b"[" * 2_000)  # (within what a proof reads)
    http = httpx.AsyncClient(transport=httpx.MockTransport(hostile(deep)))
    async with http:
        with pytest.raises(InvalidCredential, match="did not prove"):
            await prove(http, BASE, "A" * 43, deadline_s=5.0)
