"""``X-Content-Type-Options: nosniff`` on every JSON answer of the registry and the node.

A browser never reads one of their JSON answers (which hold strings nodes and clients
choose) as HTML or script. The header is a constant appended where an answer is built
(no middleware: the hot ``/v1`` paths skip the middleware stack): :data:`NOSNIFF` for an
answer built by hand, :class:`JSONAnswer` as an app's ``default_response_class`` and for
the answers its routes build; :func:`serve_openapi` for FastAPI's ``/openapi.json``
(whose own route answers a plain ``JSONResponse``: the apps are made with
``openapi_url=None``). Shared by ``registry`` and ``node``, which never import each other.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["NOSNIFF", "JSONAnswer", "serve_openapi"]

# on every JSON answer: a browser never reads one as HTML or script (a constant, appended)
NOSNIFF = (b"x-content-type-options", b"nosniff")


class JSONAnswer(JSONResponse):
    """Starlette's ``JSONResponse`` with :data:`NOSNIFF`: the apps' default response
    class, and what their routes that build their answer return."""

    def init_headers(self, headers: Any = None) -> None:
        super().init_headers(headers)
        self.raw_headers.append(NOSNIFF)


def serve_openapi(app: FastAPI, path: str = "/openapi.json") -> None:
    """``app.openapi()``'s document at ``path`` as FastAPI's own route serves it (the
    ``root_path`` named in ``servers``), with :data:`NOSNIFF`; ``app`` is made with
    ``openapi_url=None``."""

    async def openapi(request: Request) -> JSONAnswer:
        root_path = request.scope.get("root_path", "").rstrip("/")
        schema = app.openapi()
        if root_path and app.root_path_in_servers:
            servers = schema.get("servers", [])
            if root_path not in {s.get("url") for s in servers}:
                schema = {**schema, "servers": [{"url": root_path}, *servers]}
        return JSONAnswer(schema)

    app.add_route(path, openapi, include_in_schema=False)
