"""A node's refusal (a 4xx it decided) as the client's error: always OpenAI's shape.

The gateway passes a node's own 4xx on to the client (e.g. its exact context check), but
never the node's bytes: a hostile or broken node could send HTML, megabytes, invalid
UTF-8, or JSON of another shape. :func:`node_refusal` reads what it may keep and writes
``{"error": {"message", "type", "code", "param"}}`` afresh:

- **status**: the node's, when it is one a node's own refusal has (:data:`NODE_STATUSES`:
  400, 404, 413, 422); anything else that reaches the relay (a 2xx other than 200, a 3xx,
  and the 4xx only the gateway speaks for: 401, 402 payment, 403 permission, 409 a
  duplicate request id...) is a 502 ``upstream_error``: a node must not tell the client its
  key is revoked or its balance spent.
- **message**: the node's ``error.message`` when the body is a JSON object (at most
  :data:`MAX_BODY_BYTES`, strict JSON, UTF-8) whose ``error`` is an object, and the
  message is a printable string (no control or format characters) of at most
  :data:`MAX_MESSAGE_CHARS`; else the gateway's ``the node refused the request with
  HTTP <status>``.
- **type**: ``invalid_request_error`` (``api_error`` for a 502): the type of every refusal a
  node makes; a node's ``authentication_error``, ``insufficient_balance`` or
  ``permission_error`` would speak for the gateway.
- **code**: the node's when it is one of the codes a node's own refusal has
  (:data:`NODE_CODES`: ``invalid_request``, ``context_length_exceeded``, ``limit_exceeded``,
  ``request_too_large``, ``model_not_found``), else ``null``: a node's own string is no code
  (it could be any text), and the gateway's codes (``insufficient_balance``,
  ``invalid_api_key``, ``revoked``, ``rate_limit_exceeded``...) are the gateway's.
- **param**: the node's when it looks like a parameter's name (letters, digits, ``_.-[]``,
  at most :data:`MAX_PARAM_CHARS`), else ``null``.

Nothing else of the node's body is kept (no extra fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core import strict_json
from LLM_Mesh.errors import (
    ERROR_CODES,
    InvalidRequest,
    MeshError,
    ModelNotFound,
    UpstreamError,
)

__all__ = [
    "ERROR_TYPES",
    "MAX_BODY_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_PARAM_CHARS",
    "NODE_CODES",
    "NODE_STATUSES",
    "Refusal",
    "node_message",
    "node_refusal",
]

MAX_BODY_BYTES = 65_536  # a longer body is not parsed at all
MAX_MESSAGE_CHARS = 512
MAX_PARAM_CHARS = 64
_PARAM = re.compile(rf"[A-Za-z0-9_.\[\]-]{{1,{MAX_PARAM_CHARS}}}")


def _classes(*roots: type[MeshError]) -> list[type[MeshError]]:
    """``roots`` and every subclass of theirs."""
    found, todo = [], list(roots)
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _error_types() -> frozenset[str]:
    return frozenset(cls.type for cls in _classes(MeshError))


ERROR_TYPES = _error_types()


def _codes(*roots: type[MeshError]) -> frozenset[str]:
    return frozenset(cls.code for cls in _classes(*roots) if cls.code is not None) & ERROR_CODES


# what a node's own /v1 refuses with (node/app.py: InvalidRequest and its kinds, ModelNotFound)
NODE_CODES = _codes(InvalidRequest, ModelNotFound)
NODE_STATUSES = frozenset({400, 404, 413, 422})


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the client gets for a node's refusal: a status and OpenAI's error object."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


def _error_object(content: bytes) -> dict[str, Any] | None:
    """The body's ``error`` object, if the body is a JSON object that has one."""
    if len(content) > MAX_BODY_BYTES:
        return None
    try:
        err = strict_json.loads_object(content).get("error")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the limit
        return None
    return err if isinstance(err, dict) else None


def _message(err: dict[str, Any] | None) -> str | None:
    msg = err.get("message") if err is not None else None
    if isinstance(msg, str) and msg.strip() and len(msg) <= MAX_MESSAGE_CHARS and msg.isprintable():
        return msg
    return None


def node_message(content: bytes) -> str | None:
    """The node's ``error.message`` if it may be shown (see the module docstring)."""
    return _message(_error_object(content))


def node_refusal(status: int, content: bytes) -> Refusal:
    """The client's error for a node's non-200 answer ``status`` with body ``content``."""
    if not 400 <= status <= 499:
        return Refusal(
            UpstreamError.status,
            f"the node answered HTTP {status}, neither an answer nor a refusal",
            UpstreamError.type,
            UpstreamError.code,
        )
    if status not in NODE_STATUSES:  # 401, 402, 403, 409...: the gateway's to say
        return Refusal(
            UpstreamError.status,
            f"the node refused the request with HTTP {status}, a status only the gateway answers",
            UpstreamError.type,
            UpstreamError.code,
        )
    err = _error_object(content)
    message = _message(err) or f"the node refused the request with HTTP {status}"
    if err is None:
        return Refusal(status, message, "invalid_request_error")
    code, param = err.get("code"), err.get("param")
    return Refusal(
        status,
        message,
        "invalid_request_error",
        code if isinstance(code, str) and code in NODE_CODES else None,
        param if isinstance(param, str) and _PARAM.fullmatch(param) else None,
    )
