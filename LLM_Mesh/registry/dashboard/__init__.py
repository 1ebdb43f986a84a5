"""The web dashboard at ``/dashboard``, served by the gateway process itself.

Server-rendered pages (``pages.py``, ``templates/``), a little JSON for charts and the
server-side ledger check (``api.py``), static assets shipped in the package
(``static/``: the page scripts, the stylesheet and uPlot, vendored from npm with its
licence; no CDN, so it works offline and on a LAN), strict response headers
(``security.py``), and the traffic series fed by the request writer (``feed.py``).
Design: ``docs/ARCHITECTURE.md`` ("Dashboard").

:func:`install_dashboard` mounts it on the registry app as a sub-application, so its
middleware (the headers, wrapped around the whole sub-application so its 500s carry them
too) never runs on the request path of ``/v1``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from LLM_Mesh.registry.dashboard import api, pages
from LLM_Mesh.registry.dashboard.context import HERE, PATH, Dashboard
from LLM_Mesh.registry.dashboard.feed import TrafficFeed
from LLM_Mesh.registry.dashboard.security import SecurityHeaders
from LLM_Mesh.registry.errors import install_error_handlers
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.strict_query import Endpoint, strict_endpoint

__all__ = ["PATH", "Dashboard", "TrafficFeed", "install_dashboard"]


def _fed(endpoint: Endpoint, path: str, *accepted: str) -> Route:
    """A data feed the page scripts fetch: a query parameter it does not take refused (400
    ``unsupported_parameter``, ``registry/strict_query.py``; found 2026-12-07, query42:
    ``api/series?snce=T`` answered the whole window as if asked)."""
    return Route(path, strict_endpoint(endpoint, PATH + path.replace(":str", ""), *accepted))


def _routes() -> list[BaseRoute]:
    r, f = Route, _fed
    return [
        r("/", pages.overview),
        r("/nodes", pages.nodes),
        r("/nodes/{node_id:str}", pages.node),
        r("/models", pages.models),
        r("/ledger", pages.ledger),
        r("/playground", pages.playground),
        r("/operator", pages.operator),
        f(pages.overview_fragment, "/fragment/overview"),
        f(pages.nodes_fragment, "/fragment/nodes"),
        f(pages.node_fragment, "/fragment/nodes/{node_id:str}"),
        f(pages.models_fragment, "/fragment/models"),
        f(pages.ledger_fragment, "/fragment/ledger"),
        f(pages.operator_fragment, "/fragment/operator"),
        f(api.series, "/api/series", "since"),
        f(api.history, "/api/nodes/{node_id:str}/history"),
        f(api.verify, "/api/verify", "seq"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def install_dashboard(
    app: FastAPI, runtime: Runtime, *, wall_clock: Callable[[], float] = time.time
) -> Dashboard:
    """Mount the dashboard at ``/dashboard`` and feed its series from ``runtime.writer``."""
    feed = TrafficFeed(clock=wall_clock)
    runtime.writer.observers.append(feed.observe)
    dashboard = Dashboard(runtime, feed, clock=runtime.clock)
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, routes=_routes())
    sub.state.dashboard = dashboard
    install_error_handlers(sub)
    sub.add_exception_handler(404, pages.not_found)
    app.add_route(PATH, pages.redirect_home, include_in_schema=False)
    # around the whole sub-application, not added as its middleware: Starlette's outermost
    # middleware (outside any added one) answers an unexpected exception's 500, which then
    # went out without the headers (found 2026-12-05)
    app.mount(PATH, SecurityHeaders(sub))
    return dashboard
