"""Request bodies over a size limit are refused with 413, before they are buffered.

:class:`BodyLimit` is a pure ASGI middleware used by the registry + gateway
(``/v1`` bodies: ``Settings.limits.max_body_bytes``, 1 MiB; ``/mesh`` bodies: ``Settings.max_mesh_body_bytes``) and
by the node (``NodeConfig.max_body_bytes``). The answer is
:class:`~LLM_Mesh.errors.PayloadTooLarge` in OpenAI's error shape.

- A ``Content-Length`` over the limit never reaches the route.
- A body without one (chunked) is counted while the route reads it; the read
  that crosses the limit raises ``PayloadTooLarge``, and whatever the route
  would have answered is replaced by the 413. At most one chunk past the limit
  is ever held.
- Before the 413 is sent, the rest of a body of up to twice the limit is read and
  thrown away (:func:`_drain`, one chunk held at a time). A server that closes its
  connection with request bytes still unread makes the kernel reset it, and a client
  still sending its body then loses the 413 already on its way: the soak
  (``benchmarks/soak.py``) saw a 1.1 MB body end in a connection reset instead of the
  413 on 8 of 13 tries through a keep-alive client (httpx). A larger body is answered
  at once: what reading it would cost is the sender's problem, not the server's.

A request whose ``Content-Length`` is within the limit costs one header scan:
the server already refuses a body longer than it declared.

``on_read=True`` (the node's): a declared ``Content-Length`` over the limit is refused
(drained as above, then 413) when the route first reads the body, not before the route
runs, so a route that refuses a request on its headers (a node's gateway check, its
operator endpoints) answers that, the body unread (found 2026-12-03: a stranger's
``Content-Length`` of up to twice a node's 16 MiB had its body read and thrown away before
its 413, on any path). A route that reads the body gets the same 413 as before; a route
that answers without reading it answers with ``Connection: close`` (found 2026-12-03,
review: the connection was kept and the server read and discarded the whole declared
body after the answer, where the 413 had closed it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from LLM_Mesh.core.client_retry import retry_header
from LLM_Mesh.errors import PayloadTooLarge
from LLM_Mesh.json_answer import NOSNIFF
from LLM_Mesh.request_id import new_request_id

__all__ = ["BodyLimit"]

CLOSE = (b"connection", b"close")
# x-should-retry of a 413 (core/client_retry.py)
_ADVICE = [(k.encode(), v.encode()) for k, v in retry_header(413).items()]


def _too_large(limit: int) -> PayloadTooLarge:
    # the same fields as the parse stage's refusal (core/limits.py)
    return PayloadTooLarge(
        f"the request body is larger than max_body_bytes ({limit} bytes)",
        limit="max_body_bytes",
        allowed=limit,
        limit_bytes=limit,
    )


async def _send_error(send: Send, exc: PayloadTooLarge) -> None:
    body = json.dumps(exc.to_openai(), separators=(",", ":")).encode()
    rid = new_request_id().encode()  # every error answer names one (LLM_Mesh/request_id.py)
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                CLOSE,
                NOSNIFF,
                (b"x-request-id", rid),
                (b"x-mesh-request-id", rid),
                *_ADVICE,  # the client's body: a retry is refused again
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, limit: int, received: int) -> None:
    """Read and discard the rest of the request body, ``received`` bytes of it read so
    far, unless the body passes twice ``limit``: see the module docstring."""
    more = True
    while more and received <= 2 * limit:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client is gone
        received += len(message.get("body", b""))
        more = bool(message.get("more_body", False))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (per path prefix: ``limits``) with 413.

    ``limits`` is a sequence of ``(path_prefix, max_bytes)``; the first prefix
    the path starts with wins, else ``max_bytes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        limits: Sequence[tuple[str, int]] = (),
        on_read: bool = False,
    ) -> None:
        if max_bytes < 1 or any(n < 1 for _, n in limits):
            raise ValueError("body size limits must be at least 1 byte")
        self.app = app
        self.max_bytes = max_bytes
        self.limits = tuple(limits)
        self.on_read = on_read  # a declared length over the limit: refused at the first read

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None:
            if declared > limit and self.on_read:
                await self._counted(scope, receive, send, limit, declared)
                return
            if declared > limit:
                if declared <= 2 * limit:
                    await _drain(receive, limit, 0)
                await _send_error(send, _too_large(limit))
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, over: int | None = None
    ) -> None:
        """No ``Content-Length``: count the body as it is read; ``over``: a declared length
        over the limit (``on_read``), refused at the first read."""
        received = 0
        refused: PayloadTooLarge | None = None
        answered = False

        async def receive_counted() -> Message:
            nonlocal received, refused
            if over is not None:
                if refused is None:
                    refused = _too_large(limit)
                    if over <= 2 * limit:
                        await _drain(receive, limit, 0)
                raise refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = _too_large(limit)
                    if message.get("more_body", False):
                        await _drain(receive, limit, received)
                    raise refused
            return message

        async def send_unless_refused(message: Message) -> None:
            nonlocal answered
            if refused is None:
                if over is not None and message["type"] == "http.response.start":
                    # answered unread (on_read): the declared body, over the limit, is not
                    # read either way; the connection closes rather than the server reading
                    # and discarding it after the answer (found 2026-12-03, review)
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _send_error(send, refused)

        try:
            await self.app(scope, receive_counted, send_unless_refused)
        except PayloadTooLarge:
            if refused is None:
                raise
        if refused is not None and not answered:
            await _send_error(send, refused)
