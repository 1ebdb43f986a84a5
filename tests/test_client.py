"""The async gateway/registry client (client.py), over httpx.MockTransport."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from LLM_Mesh import client as client_module
from LLM_Mesh.client import MeshClient, fetch_json_sync, raise_for_error
from LLM_Mesh.errors import (
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    RegistryUnreachable,
    UpstreamError,
)

BASE = "http://mesh.test"

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> MeshClient:
    return MeshClient(
        BASE + "/", http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("Connection refused", request=request)


def sse(*events: Any, done: bool = True) -> bytes:
    out = ""
    for e in events:
        out += f"data: {json.dumps(e)}\n\n"
    if done:
        out += "data: [DONE]\n\n"
    return out.encode()


async def test_connect_error_is_registry_unreachable_with_help() -> None:
    async with client(refuse) as c:
        with pytest.raises(RegistryUnreachable) as info:
            await c.models()
    msg = str(info.value)
    assert BASE in msg
    assert "llm-mesh up" in msg
    assert "LLM_MESH_REGISTRY_URL" in msg
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_connect_timeout_is_registry_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    async with client(handler) as c:
        with pytest.raises(RegistryUnreachable):
            await c.ping()


async def test_read_timeout_is_upstream_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with client(handler) as c:
        with pytest.raises(UpstreamError):
            await c.completion({"model": "m", "prompt": "x"})


async def test_registry_calls_parse_bodies_and_hit_paths() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        bodies = {
            "/healthz": {"status": "ok"},
            "/mesh/models": {"models": [{"id": "gemma-3-270m", "available": True}]},
            "/mesh/nodes": {"nodes": [{"node_id": "n1"}]},
            "/mesh/health-check": {"results": [{"node_id": "n1", "ok": True}]},
        }
        return httpx.Response(200, json=bodies[request.url.path])

    async with client(handler) as c:
        assert c.base_url == BASE
        assert await c.ping() == {"status": "ok"}
        assert await c.models() == [{"id": "gemma-3-270m", "available": True}]
        assert await c.nodes() == [{"node_id": "n1"}]
        assert await c.health_check() == [{"node_id": "n1", "ok": True}]
    assert seen == [
        ("GET", "/healthz"),
        ("GET", "/mesh/models"),
        ("GET", "/mesh/nodes"),
        ("POST", "/mesh/health-check"),
    ]


async def test_completion_and_chat_send_non_stream_body_and_request_id() -> None:
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(200, json={"choices": [{"text": "ok"}]})

    async with client(handler) as c:
        await c.completion({"model": "m", "prompt": "p", "stream": True}, request_id="rid-1")
        await c.chat({"model": "m", "messages": []})
    first, second = got
    assert first.url.path == "/v1/completions"
    assert json.loads(first.content) == {"model": "m", "prompt": "p", "stream": False}
    assert first.headers["X-Request-Id"] == "rid-1"
    assert second.url.path == "/v1/chat/completions"
    assert json.loads(second.content)["stream"] is False
    assert "X-Request-Id" not in second.headers


async def test_204_where_an_object_is_asked_is_an_upstream_error() -> None:
    """Every call of the client expects an answer (a 204 was ``None`` to the caller, whose
    ``data["nodes"]`` then raised ``TypeError``: found 2026-12-04)."""
    async with client(lambda r: httpx.Response(204)) as c:
        with pytest.raises(UpstreamError, match="is not JSON"):
            await c._request("DELETE", "/mesh/nodes/n1")


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            400,
            {
                "error": {
                    "message": "bad",
                    "type": "invalid_request_error",
                    "code": "invalid_request",
                }
            },
            InvalidRequest,
        ),
        (404, {"error": {"message": "no", "code": "model_not_found"}}, ModelNotFound),
        (429, {"error": {"message": "busy", "code": "overloaded", "retry_after": 3}}, Overloaded),
        (502, "Bad Gateway", UpstreamError),
    ],
)
async def test_error_bodies_rebuilt_into_classes(
    status: int, body: Any, cls: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    async with client(handler) as c:
        with pytest.raises(cls) as info:
            await c.completion({"model": "m", "prompt": "p"})
    assert type(info.value) is cls


async def test_model_unavailable_rebuilt_with_available() -> None:
    body = {
        "error": {
            "message": "no healthy node hosts code-llama-7b",
            "type": "service_unavailable",
            "param": "model",
            "code": "model_unavailable",
            "available": ["gemma-3-270m"],
            "retry_after": 12,
        }
    }
    async with client(lambda r: httpx.Response(503, json=body)) as c:
        with pytest.raises(ModelUnavailable) as info:
            await c.completion({"model": "code-llama-7b", "prompt": "p"})
    assert info.value.available == ["gemma-3-270m"]
    assert info.value.retry_after == 12
    assert "code-llama-7b" in info.value.message


def test_raise_for_error_ok_is_silent() -> None:
    raise_for_error(httpx.Response(200, json={}))
    raise_for_error(httpx.Response(302))


def test_a_web_page_for_an_error_is_said_as_one_not_printed() -> None:
    """Found 2026-12-07 (newuser45): ``llm-mesh ask --registry`` with a URL under the
    gateway's dashboard printed the dashboard's HTML 404 page as the error (``error: HTTP
    404: <!doctype html> <html lang="en"> ...``), its title cut off."""
    page = "<!doctype html>\n<html><head><title>Not found · LLM Mesh</title></head><body>x</body>"
    request = httpx.Request("GET", "http://127.0.0.1:8800/docs/mesh/models")
    answer = httpx.Response(404, text=page, headers={"content-type": "text/html"}, request=request)
    with pytest.raises(UpstreamError) as info:
        raise_for_error(answer)
    said = str(info.value)
    assert "<" not in said, said
    assert said == (
        "HTTP 404: a web page ('Not found · LLM Mesh'), not an answer of the mesh's API, at "
        "http://127.0.0.1:8800/docs/mesh/models: is the URL the registry's own (what `llm-mesh "
        "up` prints as the gateway's, without /v1)?"
    )


def test_a_web_pages_url_is_said_without_its_credentials() -> None:
    """Found 2026-12-07 (review45): the URL said back was the request's whole URL, a
    password in it (``http://user:password@host``, basic auth through a proxy) and its
    query too, printed in the error (a terminal's, a log's)."""
    request = httpx.Request(
        "GET", "http://alice:s3cret@reg.example:8800/dashboard/v1/models?key=k9"
    )
    answer = httpx.Response(404, text="<html></html>", headers={"content-type": "text/html"},
                            request=request)  # fmt: skip
    with pytest.raises(UpstreamError) as info:
        raise_for_error(answer)
    said = str(info.value)
    assert "s3cret" not in said and "alice" not in said and "k9" not in said, said
    assert "at http://reg.example:8800/dashboard/v1/models:" in said
    escaped = httpx.Request("GET", "http://reg.example/a%1b[2Jb")  # said as sent, encoded
    page = httpx.Response(404, text="<html></html>", request=escaped)
    with pytest.raises(UpstreamError) as info:
        raise_for_error(page)
    assert "\x1b" not in str(info.value) and "/a%1b[2Jb:" in str(info.value), str(info.value)


async def test_injected_client_not_closed_owned_client_closed() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    async with MeshClient(BASE, http_client=http):
        pass
    assert not http.is_closed
    await http.aclose()
    own = MeshClient(BASE)
    await own.aclose()
    assert own._http.is_closed


# --- streaming ------------------------------------------------------------------------


async def test_stream_yields_headers_then_chunks_and_stops_at_done() -> None:
    chunks = [
        {"choices": [{"index": 0, "text": "def"}]},
        {"choices": [{"index": 0, "text": " fib"}]},
        {
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "mesh": {"node_id": "n1"},
        },
    ]
    after_done = {"choices": [{"text": "MUST NOT BE SEEN"}]}
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        body = sse(*chunks) + b": keep-alive comment\n\n" + sse(after_done, done=False)
        return httpx.Response(
            200,
            content=body,
            headers={
                "content-type": "text/event-stream",
                "X-Mesh-Node": "n1",
                "X-Mesh-Model": "gemma-3-270m",
                "X-Other": "hidden",
            },
        )

    async with client(handler) as c:
        items = [
            i
            async for i in c.stream(
                "/v1/completions", {"model": "m", "prompt": "p"}, request_id="r9"
            )
        ]
    head, *rest = items
    assert head["object"] == "mesh.headers"
    assert {k.lower(): v for k, v in head["headers"].items()} == {
        "x-mesh-node": "n1",
        "x-mesh-model": "gemma-3-270m",
    }
    assert rest == chunks
    assert json.loads(got[0].content)["stream"] is True
    assert got[0].headers["X-Request-Id"] == "r9"


async def test_stream_error_status_raises_mesh_error_before_any_item() -> None:
    body = {"error": {"message": "down", "code": "model_unavailable", "available": ["a"]}}
    items: list[Any] = []
    async with client(lambda r: httpx.Response(503, json=body)) as c:
        with pytest.raises(ModelUnavailable) as info:
            async for item in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                items.append(item)
    assert items == []
    assert info.value.available == ["a"]


async def test_stream_error_chunk_raises() -> None:
    body = sse(
        {"choices": [{"text": "a"}]}, {"error": {"message": "engine died", "code": "engine_error"}}
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    from LLM_Mesh.errors import EngineError

    async with client(handler) as c:
        with pytest.raises(EngineError, match="engine died"):
            async for _ in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                pass


async def test_stream_connect_error_is_registry_unreachable() -> None:
    async with client(refuse) as c:
        with pytest.raises(RegistryUnreachable):
            async for _ in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                pass


# --- the blocking helper ---------------------------------------------------------------


def test_fetch_json_sync_connect_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RegistryUnreachable, match="llm-mesh up"):
        fetch_json_sync(BASE, "/mesh/models", transport=httpx.MockTransport(refuse))


def test_fetch_json_sync_ok_and_error(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    contexts: list[ssl.SSLContext] = []
    made = client_module.client_ssl_context

    def context(*ca_files: str | None) -> ssl.SSLContext:
        contexts.append(made(*ca_files))
        return contexts[-1]

    def gateway(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if request.url.path == "/missing":
            return httpx.Response(404, json={"error": {"message": "x", "code": "model_not_found"}})
        return httpx.Response(200, json={"models": []})

    monkeypatch.setattr(client_module, "client_ssl_context", context)
    mock = httpx.MockTransport(gateway)
    assert fetch_json_sync(BASE + "/", "/mesh/models", transport=mock) == {"models": []}
    assert calls == [BASE + "/mesh/models"]
    # an https registry is verified, always
    assert all(c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname for c in contexts)
    assert contexts
    with pytest.raises(ModelNotFound):
        fetch_json_sync(BASE, "/missing", transport=mock)


@pytest.mark.parametrize("exc_type", [httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError])
async def test_other_transport_errors_stay_in_the_tree(
    exc_type: type[httpx.TransportError],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("connection reset", request=request)

    async with client(handler) as c:
        with pytest.raises(UpstreamError, match="connection reset") as info:
            await c.models()
    assert not isinstance(info.value, RegistryUnreachable)
    assert isinstance(info.value.__cause__, exc_type)


async def test_an_api_key_goes_with_v1_calls_only_and_none_means_no_header() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/v1/chat/completions" and json.loads(request.content)["stream"]:
            return httpx.Response(200, content=sse({"choices": []}))
        if request.url.path == "/mesh/models":
            return httpx.Response(200, json={"models": []})
        return httpx.Response(200, json={"choices": []})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with MeshClient(BASE, http_client=http, api_key="lmk_secret") as c:
        await c.models()
        await c.chat(body, request_id="r1")
        await c.completion({"model": "m", "prompt": "x"})
        async for _ in c.stream("/v1/chat/completions", body):
            pass
    async with MeshClient(BASE, http_client=http) as c:
        await c.chat(body)
    await http.aclose()
    assert seen == [
        ("/mesh/models", None),
        ("/v1/chat/completions", "Bearer lmk_secret"),
        ("/v1/completions", "Bearer lmk_secret"),
        ("/v1/chat/completions", "Bearer lmk_secret"),
        ("/v1/chat/completions", None),  # no key: no header at all, served as anonymous
    ]


async def test_a_wrong_key_comes_back_as_invalid_api_key() -> None:
    from LLM_Mesh.errors import InvalidApiKey, RateLimited

    def handler(request: httpx.Request) -> httpx.Response:
        code = (
            "invalid_api_key"
            if "bad" in (request.headers.get("authorization") or "")
            else ("rate_limit_exceeded")
        )
        status = 401 if code == "invalid_api_key" else 429
        return httpx.Response(status, json={"error": {"message": "no", "type": "x", "code": code,
                                                      "retry_after": 7}})  # fmt: skip

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with MeshClient(BASE, http_client=http, api_key="bad") as c:
        with pytest.raises(InvalidApiKey):
            await c.chat({"model": "m", "messages": []})
    async with MeshClient(BASE, http_client=http, api_key="good") as c:
        with pytest.raises(RateLimited) as info:
            await c.chat({"model": "m", "messages": []})
    assert info.value.retry_after == 7
    await http.aclose()


def test_the_seed_registry_sends_the_environments_key() -> None:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.distributed_models import DistributedModelRegistry

    reg = DistributedModelRegistry(Settings.from_env({"LLM_MESH_API_KEY": " lmk_env "}))
    assert reg.api_key == "lmk_env"
    assert DistributedModelRegistry(Settings.from_env({}), api_key="lmk_arg").api_key == "lmk_arg"
    assert DistributedModelRegistry(Settings.from_env({})).api_key is None


# --- several gateways (replicas) ------------------------------------------------------

CHAT_ANSWER = {"id": "c", "object": "chat.completion", "choices": [], "mesh": {}}


class Gateways:
    """Gateways by host: ``mode[host]`` is ok | refuse | reset | 503 | 409."""

    def __init__(self, **mode: str) -> None:
        self.mode = mode
        self.seen: list[tuple[str, str | None]] = []  # (host, X-Request-Id)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, request.headers.get("x-request-id")))
        mode = self.mode[host]
        if mode == "refuse":
            raise httpx.ConnectError("Connection refused", request=request)
        if mode == "reset":  # the replica died after the request went out
            raise httpx.ReadError("Connection reset by peer", request=request)
        if mode == "503":
            return httpx.Response(503, json={"error": {"message": "x", "code": "upstream"}})
        if mode == "409":
            err = {"message": "may have run", "code": "duplicate_request", "reason": "owner_lost"}
            return httpx.Response(409, json={"error": err})
        if request.url.path == "/mesh/models":
            return httpx.Response(200, json={"models": [{"id": host}]})
        if json.loads(request.content).get("stream"):
            body = sse({"choices": [{"delta": {"content": host}}]})
            return httpx.Response(200, content=body, headers={"x-mesh-node": "n"})
        return httpx.Response(200, json={**CHAT_ANSWER, "id": host})


def many(gw: Gateways, urls: str = "http://a.test, http://b.test/") -> MeshClient:
    return MeshClient(urls, http_client=httpx.AsyncClient(transport=httpx.MockTransport(gw)))


async def test_a_dead_gateway_is_skipped_and_the_next_one_kept() -> None:
    gw = Gateways(**{"a.test": "refuse", "b.test": "ok"})
    c = many(gw)
    assert c.base_urls == ("http://a.test", "http://b.test")
    assert (await c.models())[0]["id"] == "b.test"
    assert (await c.chat({"model": "m", "messages": []}))["id"] == "b.test"
    assert c.base_url == "http://b.test" and c.failovers == 1  # b kept: a not tried again
    assert [h for h, _ in gw.seen] == ["a.test", "b.test", "b.test"]
    rid = gw.seen[-1][1]
    assert rid is not None and rid.startswith("req-")  # several gateways: always an id


@pytest.mark.parametrize("failure", ["reset", "503"])
async def test_a_request_retried_elsewhere_keeps_its_request_id(failure: str) -> None:
    gw = Gateways(**{"a.test": failure, "b.test": "ok"})
    c = many(gw)
    assert (await c.chat({"model": "m", "messages": []}))["id"] == "b.test"
    (h1, id1), (h2, id2) = gw.seen
    assert (h1, h2) == ("a.test", "b.test") and id1 == id2 and id1
    await c.completion({"model": "m", "prompt": "x"}, request_id="mine-1")
    assert gw.seen[-1] == ("b.test", "mine-1")


async def test_a_duplicate_refusal_is_the_answer_not_a_reason_to_move() -> None:
    gw = Gateways(**{"a.test": "409", "b.test": "ok"})
    with pytest.raises(Exception, match="may have run"):
        await many(gw).chat({"model": "m", "messages": []}, request_id="r1")
    assert [h for h, _ in gw.seen] == ["a.test"]


async def test_one_gateway_posts_are_not_retried_after_the_request_went_out() -> None:
    gw = Gateways(**{"a.test": "reset"})
    with pytest.raises(UpstreamError):
        await many(gw, "http://a.test").chat({"model": "m", "messages": []})
    assert gw.seen == [("a.test", None)]  # one gateway: no id made, nothing retried


async def test_every_gateway_down_is_unreachable() -> None:
    gw = Gateways(**{"a.test": "refuse", "b.test": "refuse"})
    with pytest.raises(RegistryUnreachable, match=r"b\.test"):
        await many(gw).models()


async def test_a_stream_moves_before_its_first_event() -> None:
    gw = Gateways(**{"a.test": "refuse", "b.test": "ok"})
    c = many(gw)
    items = [x async for x in c.stream("/v1/chat/completions", {"model": "m"})]
    assert items[0]["object"] == "mesh.headers"
    assert items[1]["choices"][0]["delta"]["content"] == "b.test"
    (_, id1), (_, id2) = gw.seen
    assert id1 == id2 and id1


def test_fetch_json_sync_tries_each_gateway() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": str(request.url)})

    mock = httpx.MockTransport(gateway)
    got = fetch_json_sync("http://a.test,http://b.test", "/x", transport=mock)
    assert got == {"ok": "http://b.test/x"}
    got = fetch_json_sync(["http://a.test", "http://b.test"], "/y", transport=mock)
    assert got == {"ok": "http://b.test/y"}


async def test_stream_event_that_is_not_json_is_an_upstream_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse({"choices": [{"index": 0, "text": "ok"}]}, done=False) + b"data: oops{\n\n"
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    async with client(handler) as c:
        got = []
        with pytest.raises(UpstreamError, match="not JSON") as info:  # before: JSONDecodeError
            async for chunk in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                got.append(chunk)
    assert got[-1] == {"choices": [{"index": 0, "text": "ok"}]}
    assert "oops" in info.value.message
