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

A whole answer (a plain ``Response``: its body known, not a stream) leaves in **one**
write to the socket, its head and body together (:func:`_respond`): uvicorn writes the
head when the ASGI app sends ``http.response.start`` and the body at
``http.response.body``, two ``write`` calls, so the client (for the gateway, the gateway's
own pool reading a node's answer) was woken twice and read twice. The bytes on the wire
are the same. A stream, or a server whose ``send`` is not a uvicorn connection's (a test
client), is written as before. A whole answer's background task runs after it is sent,
also when sending failed or was cancelled (the gateway's record of a request is one).

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


class _OneWrite:
    """A transport that holds the first ``write`` (a response's head) and sends it with
    the next one (its body) in a single call; anything else goes to the real transport
    (after what it holds, which :meth:`flush` also sends)."""

    __slots__ = ("held", "real")

    def __init__(self, real: Any) -> None:
        self.real = real
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is None:
            self.held = bytes(data)
            return
        self.held = b""  # only the first write is held
        self.real.write(held + data if held else data)

    def flush(self) -> None:
        held, self.held = self.held, b""
        if held:
            self.real.write(held)

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self.real, name)


async def _respond(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``response``; a whole one through uvicorn in one socket write (module docstring).

    uvicorn's ``send`` is a bound method of the connection's request cycle, which writes
    to its ``transport`` attribute: for this response that is a :class:`_OneWrite`. A whole
    response's background task (the gateway's record of the request) runs once it is sent,
    and also when sending it failed or was cancelled (Starlette's would not run then)."""
    cycle = getattr(send, "__self__", None)
    real = getattr(cycle, "transport", None)
    if type(response).__call__ is not Response.__call__:
        await response(scope, receive, send)  # a stream: as it is
        return
    background, response.background = response.background, None
    one = None if real is None else _OneWrite(real)
    if one is not None:
        cycle.transport = one  # type: ignore[union-attr]
    try:
        await response(scope, receive, send)
    finally:
        if one is not None:
            if cycle.transport is one:  # type: ignore[union-attr]
                cycle.transport = real  # type: ignore[union-attr]
            one.flush()
        if background is not None:
            await background()


def _serve(endpoint: Endpoint, on_error: ErrorHandler) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await on_error(request, exc)
        await _respond(response, scope, receive, send)

    return app


class HotRoutesApp(FastAPI):
    """A FastAPI app whose hot ``POST`` routes skip the middleware stack and router."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hot: dict[str, ASGIApp] = {}
        self._checked = False

    def add_hot_route(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        on_error: ErrorHandler,
        max_body_bytes: int,
        on_read: bool = False,
    ) -> None:
        """Serve ``POST path`` with ``endpoint`` ahead of everything (see the module
        docstring); the route is also added to the app as a plain route. ``on_read``: the
        body limit refuses a declared length when the endpoint reads the body
        (:class:`~LLM_Mesh.body_limit.BodyLimit`)."""
        self.add_route(path, endpoint, methods=["POST"])
        self._hot[path] = BodyLimit(
            _serve(endpoint, on_error), max_bytes=max_body_bytes, on_read=on_read
        )

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
