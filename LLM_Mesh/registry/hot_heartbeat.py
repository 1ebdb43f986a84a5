"""Signed heartbeats served ahead of FastAPI: the registry's most frequent request.

Every node heartbeats every few seconds (10,000 nodes at 5 s: 2,000 a second on one
replica). Through FastAPI a heartbeat paid for the middleware stack, the router (a
path with a parameter), dependency solving and Starlette's request and header objects:
most of a replica's CPU per heartbeat (docs/benchmarks.md). :class:`RegistryApp` (the
registry's app: :class:`~LLM_Mesh.hot_routes.HotRoutesApp`, which does the same for the
``/v1`` POST routes) answers ``POST /mesh/nodes/{node_id}/heartbeat`` straight away
with :func:`~LLM_Mesh.registry.api.absorb_heartbeat`, the same function the FastAPI
route calls, so the checks are one code: signature, timestamp, signer, sequence number
(``registry/node_auth.py``), then table, router and store. What the skipped layers did
for this route is done here:

- the ``/mesh`` body limit (:class:`~LLM_Mesh.body_limit.BodyLimit`, the same 413);
- an exception becomes the app's error answer (``registry/errors.answer_exception``:
  the same status and body as the app's exception handlers);
- the headers are matched case-insensitively (:class:`AsgiHeaders`; the first of a
  repeated header, as Starlette's ``Headers.get``).

Anything else, a node id with a ``/`` in it, and every path when the app has middleware
other than body limits (it would not see the hot route; ``hot_routes.py`` logs it) go
the normal way. ``hot_heartbeat = False`` on the app turns it off (the benchmark's
comparison).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from LLM_Mesh.body_limit import BodyLimit
from LLM_Mesh.hot_routes import HotRoutesApp
from LLM_Mesh.registry.admin import CredentialTries
from LLM_Mesh.registry.api import absorb_heartbeat
from LLM_Mesh.registry.errors import NOSNIFF, answer_exception
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["AsgiHeaders", "RegistryApp", "heartbeat_node_id"]

_PREFIX = "/mesh/nodes/"
_SUFFIX = "/heartbeat"


def heartbeat_node_id(path: str) -> str | None:
    """The node id of a heartbeat path (as the route ``/mesh/nodes/{node_id}/heartbeat``
    matches it: one non-empty segment), else None."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    node_id = path[len(_PREFIX) : -len(_SUFFIX)]
    if not node_id or "/" in node_id:
        return None
    return node_id


class AsgiHeaders(Mapping[str, str]):
    """An ASGI scope's headers; names are case-insensitive (ASGI gives them lower-cased),
    values decoded when asked for."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> None:
        self._raw = dict(reversed(raw))  # the first of a repeated header wins

    def __getitem__(self, name: str) -> str:
        return self._raw[name.lower().encode("latin-1")].decode("latin-1")

    def get(self, name: str, default: Any = None) -> Any:
        value = self._raw.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                NOSNIFF,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _serve_heartbeat(scope: Scope, receive: Receive, send: Send) -> None:
    app = scope["app"]
    rt: Runtime = app.state.runtime
    node_id = scope["hb_node_id"]
    try:
        body = await _read_body(receive)
        client = scope.get("client")
        tries = CredentialTries(  # its counts of unknown ids and forged signatures (trust37)
            rt.limiter, client[0] if client else None, rt.clock(), homes=rt.node_homes,
            tokens=rt.beat_tokens,
        )  # fmt: skip
        answer = await absorb_heartbeat(rt, node_id, AsgiHeaders(scope["headers"]), body, tries)
    except Exception as exc:
        response = await answer_exception(Request(scope, receive, send), exc)
        await response(scope, receive, send)
        return
    data = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
    await _send_json(send, 200, data, [])


class RegistryApp(HotRoutesApp):
    """The registry + gateway app: :class:`HotRoutesApp` with the heartbeat route hot."""

    def __init__(self, *args: Any, max_heartbeat_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hot_heartbeat = True
        self._heartbeat: ASGIApp = BodyLimit(_serve_heartbeat, max_bytes=max_heartbeat_bytes)
        self._plain: bool | None = None  # middleware other than body limits: not hot

    def _heartbeat_hot(self) -> bool:
        if self._plain is None:
            self._plain = all(m.cls is BodyLimit for m in self.user_middleware)  # type: ignore[comparison-overlap]
        return self._plain and self.hot_heartbeat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.root_path:
            node_id = heartbeat_node_id(scope["path"])
            if node_id is not None and self._heartbeat_hot():
                scope["app"] = self
                scope["hb_node_id"] = node_id
                await self._heartbeat(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
