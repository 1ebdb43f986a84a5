"""One place that turns exceptions into OpenAI-shaped HTTP answers, each naming a request
id in ``X-Request-Id`` and ``X-Mesh-Request-Id`` (the request's, else a new one:
:mod:`LLM_Mesh.request_id`; an unhandled error's in its log line).

``MeshError`` -> its ``status`` and ``to_openai()`` body (plus ``Retry-After``
for ``ModelUnavailable`` / ``Overloaded`` / ``SettlementUnavailable`` / ``StoreUnavailable``
and an ``UpstreamError`` with the gateway's estimate, and a ``RateLimited``'s
``x-ratelimit-*``); every error answer carries ``x-should-retry`` (``core/client_retry.py``:
false where a client's retry cannot help soon, as for a model no node serves, a 504 that
used its whole deadline, a 500); FastAPI request validation errors
-> 400 ``invalid_request_error`` naming the field; HTTP errors (404 route, 405)
-> their status in OpenAI shape; the database not answering (SQLite's write lock held
past its busy timeout, a lost PostgreSQL connection: SQLAlchemy's ``OperationalError``
and invalidated connections; a PostgreSQL that refuses or resets a new connection: the
socket's ``ConnectionError``, which SQLAlchemy passes on unwrapped from asyncpg) -> 503 ``store_unavailable`` with ``Retry-After: 1``, a
transient refusal, not a server fault; anything else -> 500 ``api_error``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.client_retry import retry_header
from LLM_Mesh.errors import (
    InvalidRequest,
    MeshError,
    ModelUnavailable,
    Overloaded,
    RateLimited,
    SettlementUnavailable,
    StoreUnavailable,
    UpstreamError,
)

# (re-exported: the registry's modules take them from here)
from LLM_Mesh.json_answer import NOSNIFF as NOSNIFF
from LLM_Mesh.json_answer import JSONAnswer as JSONAnswer
from LLM_Mesh.logs import exception_words
from LLM_Mesh.request_id import id_headers, new_request_id

log = logging.getLogger(__name__)


_JSON_TYPE = (b"content-type", b"application/json")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (no re-validation, no pretty printing; never ``NaN``).

    Without ``headers`` (every whole answer: ``relay.json_answer``) the ``Response`` is
    filled in here as Starlette's ``__init__`` fills it (``render``, ``init_headers``: the
    same attributes, the same header bytes in the same order), without its three calls and
    their look-ups (perf45; ``tests/registry/test_errors_json.py`` holds the two equal)."""
    if headers is None:
        content = strict_json.dumps(body)
        response = Response.__new__(Response)
        response.status_code = status
        response.media_type = "application/json"
        response.background = None
        response.body = content
        if status < 200 or status in (204, 304):  # no content-length (init_headers')
            response.raw_headers = [_JSON_TYPE, NOSNIFF]
        else:
            length = (b"content-length", str(len(content)).encode("latin-1"))
            response.raw_headers = [length, _JSON_TYPE, NOSNIFF]
        return response
    response = Response(
        strict_json.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )
    response.raw_headers.append(NOSNIFF)
    return response


def error_response(exc: MeshError) -> Response:
    """The HTTP answer for a mesh error."""
    headers: dict[str, str] = {}
    wait: int | None = None
    if isinstance(exc, (ModelUnavailable, Overloaded, SettlementUnavailable, StoreUnavailable)):
        wait = max(1, int(exc.retry_after))
        headers["Retry-After"] = str(wait)
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
    elif isinstance(exc, UpstreamError) and exc.retry_after is not None:  # the estimate
        wait = max(1, int(exc.retry_after))
        headers["Retry-After"] = str(wait)
    hopeless = isinstance(exc, ModelUnavailable) and exc.hopeless
    headers.update(retry_header(exc.status, wait, hopeless=hopeless))
    # the request's id (its log line's and record's), else a new one: every error answer
    # names one, the openai SDK's ``request_id`` (LLM_Mesh/request_id.py)
    headers.update(id_headers(exc.request_id or new_request_id()))
    return json_response(exc.to_openai(), exc.status, headers)


_TOKEN_LIMITS = frozenset({"max_tokens", "max_completion_tokens"})


def invalid_from_validation(errors: list[Any], prefix: tuple[str, ...] = ()) -> InvalidRequest:
    """A 400 naming the first offending field of pydantic/FastAPI validation errors."""
    if not errors:
        return InvalidRequest("invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in prefix]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    text = f"{param}: {msg}" if param else msg
    given, ctx = first.get("input"), first.get("ctx") or {}
    if (  # said as a context refusal is (found 2026-12-06, newuser33: pydantic's words)
        param in _TOKEN_LIMITS and first.get("type") == "less_than_equal" and type(given) is int
    ):
        text = f"{param}={given} exceeds {ctx.get('le')}, the most tokens one request may ask for"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return InvalidRequest(text, param=param)


def invalid_from_pydantic(exc: ValidationError) -> InvalidRequest:
    return invalid_from_validation(list(exc.errors(include_url=False)))


async def _mesh_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, MeshError):  # pragma: no cover - registered for MeshError only
        return await _unexpected(_, exc)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        return await _unexpected(_, exc)
    return error_response(invalid_from_validation(list(exc.errors()), prefix=("body", "path")))


# what a client that reached no endpoint is told the gateway serves (found 2026-12-05,
# newuser32: the openai SDK's embeddings call heard "Not Found", a GET of a completion
# endpoint "Method Not Allowed", and nothing more)
SERVED = (
    "this gateway serves the OpenAI API's POST /v1/chat/completions, POST /v1/completions "
    "and GET /v1/models (no embeddings, images, audio, files or assistants); every "
    "endpoint is listed at /openapi.json and /docs; the dashboard is at /dashboard/"
)
_SHOWN_PATH = 200  # characters of the asked path said back
_WITHOUT_V1 = frozenset({"/chat/completions", "/completions", "/models"})


def _route_words(request: Request, exc: StarletteHTTPException) -> str:
    """The message of Starlette's own 404 (no route) or 405 (another method), else the
    handler's own ``detail``."""
    asked = f"{request.method} {request.url.path[:_SHOWN_PATH]}"
    if len(request.url.path) > _SHOWN_PATH:
        asked += "..."
    if exc.status_code == 404 and exc.detail == "Not Found":
        said = f"no endpoint {asked}: {SERVED}"
        if request.url.path.rstrip("/") in _WITHOUT_V1:  # an SDK's base_url lacking /v1
            base = str(request.base_url).rstrip("/")
            said += f"; an OpenAI client's base_url ends in /v1: {base}/v1"
        return said
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow") or ""
        return f"{asked}: method not allowed; use {allow or 'another method'}"
    return str(exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        return await _unexpected(request, exc)
    kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
    message = _route_words(request, exc)
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    advice = retry_header(exc.status_code)  # a 404 route, a 405: the client's (no retry)
    return json_response(body, exc.status_code, {**(exc.headers or {}), **advice, **_fresh_id()})


def _store_busy(exc: Exception) -> bool:
    """The database did not answer (module doc), as opposed to a fault in our code. A
    ``ConnectionError`` here is the store's: no other peer's reaches a handler (checked in
    review 2026-12-04, "latent", no path found). Nodes: every ``NodeClient`` raises only
    its ``NodeTransportError`` tree (``Http1Pool``: ``OSError`` at connect and a lost
    connection become ``Http1Error``; aiohttp >= 3.10: ``ClientConnectionResetError`` is a
    ``ClientError``; httpx: ``HTTPError``; the TLS probe: ``OSError``), which the send
    stage turns into router outcomes. Redis: ``RedisLimiter`` catches every error (the
    process's buckets decide). Witnesses, resolver: caught where called. A new peer client
    must wrap its socket errors likewise: one that leaked a ``ConnectionError`` would be
    answered 503 ``store_unavailable`` here, and its node attempt counted ``cancelled``."""
    return isinstance(exc, (OperationalError, ConnectionError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    if _store_busy(exc):
        log.warning(
            "the database did not answer on %s %s: %s (503, retry)",
            request.method, request.url.path, str(exc).splitlines()[0][:300],
        )  # fmt: skip
        return error_response(
            StoreUnavailable("the registry's database is busy: try again shortly")
        )
    # the frames and the type; the message without what it quotes, which on a request's path
    # may be the prompt or the output (docs/security.md, "Privacy"; logs.exception_words)
    frames = "".join(traceback.format_tb(exc.__traceback__))
    named = _fresh_id()
    log.error(
        "unhandled error on %s %s (%s): %s: %s\nTraceback (most recent call last):\n%s",
        request.method, request.url.path, named["X-Request-Id"], type(exc).__name__,
        exception_words(exc), frames,
    )  # fmt: skip
    body = {
        "error": {
            "message": "internal error in the registry",
            "type": "api_error",
            "param": None,
            "code": "internal_error",
        }
    }
    # no retry (core/client_retry.py): a fault a retry most likely meets again, after a
    # payment perhaps (a retry without an id would run and pay again)
    return json_response(body, 500, {**retry_header(500), **named})


def _fresh_id() -> dict[str, str]:
    return id_headers(new_request_id())


async def answer_exception(request: Request, exc: Exception) -> Response:
    """What the handlers below answer for ``exc`` (the hot routes' error path,
    ``LLM_Mesh/hot_routes.py``)."""
    if isinstance(exc, MeshError):
        return error_response(exc)
    if isinstance(exc, StarletteHTTPException):
        return await _http_error(request, exc)
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(MeshError, _mesh_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # the store's errors answered here, not by the catch-all below: Starlette's outermost
    # middleware answers that one and raises the exception again (uvicorn then logs its
    # traceback too: one per request while a database is away)
    app.add_exception_handler(DBAPIError, _unexpected)
    app.add_exception_handler(ConnectionError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
