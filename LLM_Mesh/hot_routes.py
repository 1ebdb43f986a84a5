"""The inference POST routes, served ahead of the app's middleware stack and router.

A FastAPI app runs every request through its middleware stack (server errors, the
native telemetry check, FastAPI's and our body limits, exception handling, the exit
stack) and its router before the endpoint; for the two inference routes of the
gateway and of a node that was a measured share of each process's CPU per request
(docs/benchmarks.md). :class:`HotRoutesApp` serves ``POST`` to the paths given to
:meth:`HotRoutesApp.add_hot_route` straight away, with what those layers did for them:

- the body limit (:class:`~LLM_Mesh.body_limit.BodyLimit`, the same 413);
- exceptions raised by the endpoint become the app's error answer (``on_error``: the
  MeshError → OpenAI body mapping both apps already use);
- ``request.app`` is the app (``scope["app"]``), so ``app.state`` works as before.

Everything else (other methods and paths, ``/mesh``, the OpenAPI document, which still
lists the routes) goes through FastAPI as before. The routes stay registered on the
app too: ASGI clients and tools that walk the routes see no difference. A middleware
other than ``BodyLimit`` added to the app would not see the hot routes: then they take
the normal way instead (correct, not fast; logged once), so add per-request work to
the handlers, not as middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from LLM_Mesh.body_limit import BodyLimit

__all__ = ["Endpoint", "ErrorHandler", "HotRoutesApp"]

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
# an exception the endpoint raised -> the answer (or re-raise it)
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def _serve(endpoint: Endpoint, on_error: ErrorHandler) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await on_error(request, exc)
        await response(scope, receive, send)

    return app


class HotRoutesApp(FastAPI):
    """A FastAPI app whose hot ``POST`` routes skip the middleware stack and router."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hot: dict[str, ASGIApp] = {}
        self._checked = False

    def add_hot_route(
        self, path: str, endpoint: Endpoint, *, on_error: ErrorHandler, max_body_bytes: int
    ) -> None:
        """Serve ``POST path`` with ``endpoint`` ahead of everything (see the module
        docstring); the route is also added to the app as a plain route."""
        self.add_route(path, endpoint, methods=["POST"])
        self._hot[path] = BodyLimit(_serve(endpoint, on_error), max_bytes=max_body_bytes)

    def _only_body_limits(self) -> bool:
        """Whether the app's own middleware is body limits only (the hot path has one)."""
        others = [m for m in self.user_middleware if m.cls != BodyLimit]  # type: ignore[comparison-overlap]
        if others and not self._checked:
            log.warning(
                "middleware %s would not see the hot routes %s: they take the normal way",
                ", ".join(getattr(m.cls, "__name__", str(m.cls)) for m in others),
                ", ".join(self._hot),
            )
        self._checked = True
        if others:
            self._hot.clear()
        return not others

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._checked:
            self._only_body_limits()
        if scope["type"] == "http" and scope["method"] == "POST" and not self.root_path:
            hot = self._hot.get(scope["path"])
            if hot is not None:
                scope["app"] = self
                await hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
