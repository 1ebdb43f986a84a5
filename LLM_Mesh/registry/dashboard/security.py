"""The dashboard's response headers: a strict Content-Security-Policy and friends.

Every response of the dashboard's sub-application (pages, fragments, JSON, static files,
errors, the 500 of an unexpected exception included: the middleware wraps the whole
sub-application, outside Starlette's own outermost one) gets them, each once. The policy allows scripts, styles, images and connections from the
gateway's own origin only: no inline script or style, no ``eval``, no CDN, no frames.
Pages and fragments are not cached (an operator's fragment lists their nodes); static
files are cached briefly and revalidated by their ``ETag``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_COMMON = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]
#: replaced, not repeated, where the answer has its own (the gateway's error answers say nosniff)
_REPLACED = frozenset({b"cache-control", *(name for name, _ in _COMMON)})


class SecurityHeaders:
    """ASGI middleware adding the headers above (and ``Cache-Control``) to every response."""

    def __init__(self, app: ASGIApp, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        static = path[len(root) :].startswith(self.static_prefix)
        cache = b"public, max-age=300" if static else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _REPLACED
                ]
                headers.extend(_COMMON)
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
