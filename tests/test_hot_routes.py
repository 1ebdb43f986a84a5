"""The hot POST routes served ahead of the middleware stack (``LLM_Mesh/hot_routes.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from LLM_Mesh.errors import InvalidRequest, MeshError
from LLM_Mesh.hot_routes import HotRoutesApp
from tests.registry.helpers import running


class Seen:
    """A middleware that notes every request it sees."""

    paths: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def _app() -> HotRoutesApp:
    app = HotRoutesApp()
    app.state.name = "the app"

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if body == b"mesh-error":
            raise InvalidRequest("refused")
        if body == b"boom":
            raise RuntimeError("boom")
        return JSONResponse({"app": request.app.state.name, "n": len(body)})

    async def on_error(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, MeshError):
            return JSONResponse(exc.to_openai(), status_code=exc.status)
        return JSONResponse({"unexpected": type(exc).__name__}, status_code=500)

    app.add_hot_route("/hot", endpoint, on_error=on_error, max_body_bytes=16)

    @app.get("/cold")
    async def cold() -> dict[str, str]:
        return {"ok": "cold"}

    return app


async def test_hot_posts_skip_the_stack_and_keep_what_they_need() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/hot", content=b"hello")
        assert r.status_code == 200 and r.json() == {"app": "the app", "n": 5}
        r = await c.post("/hot", content=b"mesh-error")
        assert r.status_code == 400 and r.json()["error"]["message"] == "refused"
        r = await c.post("/hot", content=b"boom")
        assert r.status_code == 500 and r.json() == {"unexpected": "RuntimeError"}
        r = await c.post("/hot", content=b"x" * 17)  # the body limit still holds
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert app.middleware_stack is None  # FastAPI's stack never ran (it is built lazily)
        # other methods and paths take the normal way
        assert (await c.get("/cold")).json() == {"ok": "cold"}
        assert app.middleware_stack is not None
        assert (await c.get("/hot")).status_code == 405
    assert any(getattr(r, "path", None) == "/hot" for r in app.routes)  # still a route


async def test_a_middleware_of_the_app_sees_the_hot_routes_too() -> None:
    """Another middleware would miss the hot path: then it is not taken."""
    Seen.paths = []
    app = _app()
    app.add_middleware(Seen)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/hot", content=b"hello")
        assert r.status_code == 200 and r.json()["n"] == 5
    assert Seen.paths == ["POST /hot"]


async def test_the_gateways_unexpected_error_is_its_json_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as h:
        await h.register("a")

        def broken(*_args: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr("LLM_Mesh.registry.pipeline.build_job", broken)
        r = await h.client.post("/v1/chat/completions", json={"model": "gemma-3-270m"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"


async def test_a_busy_database_is_a_503_to_retry_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's write lock held past its busy timeout (seen under load in bench_rss.py)
    while the request id is claimed: a transient 503 with Retry-After, and the id is
    free again, so the client's retry runs."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    async with running(tmp_path) as h:
        await h.register("a")
        store = h.store
        real = store.claim_request_key
        calls = 0

        async def locked(*args: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:
                locked = sqlite3.OperationalError("database is locked")
                raise OperationalError("INSERT ...", (), locked)
            return await real(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "claim_request_key", locked)
        body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
        hdr = {"X-Request-Id": "busy-1"}
        r = await h.client.post("/v1/chat/completions", json=body, headers=hdr)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "store_unavailable"
        again = await h.client.post("/v1/chat/completions", json=body, headers=hdr)
        assert again.status_code == 200, again.text
        assert h.nodes.calls() == 1


def test_the_gateway_and_the_node_serve_their_inference_routes_hot(tmp_path: Path) -> None:
    """Both apps keep the fast path (no middleware of theirs turns it off)."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.app import create_node_app
    from LLM_Mesh.node.service import NodeService
    from LLM_Mesh.registry.app import create_registry_app
    from tests.node.conftest import node_config, sim_engine
    from tests.registry.helpers import make_settings

    paths = {"/v1/chat/completions", "/v1/completions"}
    svc = NodeService(node_config(register=False), Settings(home=tmp_path), engine=sim_engine(),
                      hardware=Hardware())  # fmt: skip
    for app in (create_node_app(svc), create_registry_app(make_settings(tmp_path))):
        assert isinstance(app, HotRoutesApp)
        assert app._only_body_limits() and set(app._hot) == paths


class _Transport:
    """What uvicorn's protocol needs of a transport; notes each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_protocol(self, protocol: object) -> None: ...


async def _uvicorn_writes(app: ASGIApp, request: bytes) -> list[bytes]:
    """The socket writes uvicorn's own HTTP protocol (httptools) makes answering ``request``."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(app=app, http="httptools", lifespan="off", log_level="warning")
    config.load()
    proto = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(request)
    for _ in range(100):  # until the response is complete (its task ran)
        if proto.cycle.response_complete:
            break
        await asyncio.sleep(0.01)
    proto.connection_lost(None)
    return transport.writes


async def test_a_whole_answer_leaves_in_one_socket_write_through_uvicorn() -> None:
    """Head and body together: one write (uvicorn wrote the head and the body apart, so
    the client was woken twice); the same bytes, and the connection kept for the next."""
    pytest.importorskip("httptools")
    body = b"hello"
    req = (b"POST /hot HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    writes = await _uvicorn_writes(_app(), req)
    assert len(writes) == 1
    head, _, rest = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 23" in head
    assert rest == b'{"app":"the app","n":5}'
    # an error answer too (the app's error handler's response)
    req = b"POST /hot HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nboom"
    writes = await _uvicorn_writes(_app(), req)
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 500 ")


async def test_a_stream_is_written_as_it_comes() -> None:
    """A streamed answer is not held: uvicorn writes its head and each chunk at once."""
    pytest.importorskip("httptools")
    from starlette.responses import StreamingResponse

    app = HotRoutesApp()

    async def endpoint(_request: Request) -> Response:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def on_error(_request: Request, exc: Exception) -> Response:
        raise exc

    app.add_hot_route("/s", endpoint, on_error=on_error, max_body_bytes=16)
    writes = await _uvicorn_writes(app, b"POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert writes[0].startswith(b"HTTP/1.1 200 OK") and writes[0].endswith(b"\r\n\r\n")
    assert b"".join(writes[1:]) == b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"
    assert len(writes) >= 3


async def test_a_whole_answers_background_task_runs_even_when_sending_fails() -> None:
    """The gateway records a request in its answer's background task: it must run once the
    answer is sent, and also when sending it raised (Starlette's own would not)."""
    from starlette.background import BackgroundTask

    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    app = HotRoutesApp()

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"n": 1}, background=BackgroundTask(note, await request.body()))

    async def on_error(_request: Request, exc: Exception) -> Response:
        raise exc

    app.add_hot_route("/h", endpoint, on_error=on_error, max_body_bytes=16)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/h", "raw_path": b"/h", "query_string": b"", "root_path": "",
        "headers": [], "client": ("127.0.0.1", 5000), "server": ("t", 80),
    }  # fmt: skip

    def receive_body(body: bytes):  # type: ignore[no-untyped-def]
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    sent: list[str] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(str(message["type"]))

    await app(scope, receive_body(b"ok"), send)
    assert sent == ["http.response.start", "http.response.body"] and ran == [b"ok"]

    async def broken(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the connection broke")

    with pytest.raises(OSError):
        await app(scope, receive_body(b"broke"), broken)
    assert ran == [b"ok", b"broke"]
