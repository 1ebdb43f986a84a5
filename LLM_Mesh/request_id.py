"""The gateway's request ids: ``req-`` and 128 random bits in hex.

Every answer of the gateway's ``/v1`` API carries one in ``X-Request-Id`` (OpenAI's header:
the openai SDK's ``_request_id`` of an answer and ``request_id`` of an error) and
``X-Mesh-Request-Id``: an answer and a refusal after parsing the request's own, the one
its log line and record carry; a refusal before it (bad JSON, an unknown model, an
unsupported field, a body or head too large: found 2026-12-05, none had one) a fresh one,
which the request's log line carries where it has one (``registry/pipeline.py``).
Shared by the registry and the transport guards (``body_limit.py``, ``slow_clients.py``).
"""

from __future__ import annotations

import os

__all__ = ["id_headers", "new_request_id"]


def new_request_id() -> str:
    """``req-`` and 128 random bits in hex (as a uuid4's hex, at a quarter of its cost)."""
    return "req-" + os.urandom(16).hex()


def id_headers(request_id: str) -> dict[str, str]:
    """The answer's headers naming ``request_id``: OpenAI's and the mesh's."""
    return {"X-Request-Id": request_id, "X-Mesh-Request-Id": request_id}
