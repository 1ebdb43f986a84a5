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

    app.add_middleware(Seen)
    return app


async def test_hot_posts_skip_the_middleware_and_keep_what_they_need() -> None:
    Seen.paths = []
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/hot", content=b"hello")
        assert r.status_code == 200 and r.json() == {"app": "the app", "n": 5}
        assert Seen.paths == []  # no middleware ran
        r = await c.post("/hot", content=b"mesh-error")
        assert r.status_code == 400 and r.json()["error"]["message"] == "refused"
        r = await c.post("/hot", content=b"boom")
        assert r.status_code == 500 and r.json() == {"unexpected": "RuntimeError"}
        r = await c.post("/hot", content=b"x" * 17)  # the body limit still holds
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert Seen.paths == []
        # other methods and paths take the normal way
        assert (await c.get("/cold")).json() == {"ok": "cold"}
        assert (await c.get("/hot")).status_code == 405
        assert Seen.paths == ["GET /cold", "GET /hot"]
    assert any(getattr(r, "path", None) == "/hot" for r in app.routes)  # still a route


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
