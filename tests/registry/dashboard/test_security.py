"""The dashboard's response headers, on every kind of answer it gives."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from LLM_Mesh.registry.dashboard.security import CSP, SecurityHeaders


def _app() -> SecurityHeaders:
    async def page(_request: object) -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Cache-Control": "public, max-age=99999"})

    return SecurityHeaders(Starlette(routes=[Route("/p", page), Route("/static/a.js", page)]))


@pytest.mark.parametrize("path,cache", [("/p", "no-store"), ("/static/a.js", "public, max-age=300"),
                                        ("/missing", "no-store")])  # fmt: skip
async def test_headers_on_pages_static_files_and_errors(path: str, cache: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        r = await c.get(path)
    assert r.headers["content-security-policy"] == CSP
    assert r.headers.get_list("cache-control") == [cache]  # the app's own is replaced
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


def test_the_policy_allows_nothing_inline_and_nothing_from_elsewhere() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert "'unsafe-inline'" not in directives[name] and "'unsafe-eval'" not in directives[name]
        assert "*" not in directives[name] and "http" not in directives[name]
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


async def test_the_v1_path_does_not_run_the_dashboard_middleware(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Mounted as a sub-application: the OpenAI API's answers carry none of its headers."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.app import create_registry_app
    from LLM_Mesh.registry.memory_store import MemoryStore

    app = create_registry_app(
        Settings(home=tmp_path), store=MemoryStore(), announce=lambda _k: None
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        r = await c.get("/v1/models")
        d = await c.get("/dashboard/")
    assert r.status_code == 200 and "content-security-policy" not in r.headers
    assert d.status_code == 200 and d.headers["content-security-policy"] == CSP


@pytest.mark.parametrize(
    "path", ["/dashboard/api/series", "/dashboard/", "/dashboard/fragment/nodes"]
)
async def test_an_unexpected_500_carries_the_headers_too(tmp_path, monkeypatch, path: str) -> None:  # type: ignore[no-untyped-def]
    """A bug in a page (any exception no handler names) is answered 500 by Starlette's
    outermost middleware: that answer carries the strict headers as every other does."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.app import create_registry_app
    from LLM_Mesh.registry.dashboard.context import Dashboard
    from LLM_Mesh.registry.memory_store import MemoryStore

    def broken(_self: object) -> float:
        raise RuntimeError("a bug in a dashboard page")

    monkeypatch.setattr(Dashboard, "now", broken)
    app = create_registry_app(
        Settings(home=tmp_path), store=MemoryStore(), announce=lambda _k: None
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        r = await c.get(path)
    assert r.status_code == 500
    assert "a bug in a dashboard page" not in r.text
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers.get_list("cache-control") == ["no-store"]
