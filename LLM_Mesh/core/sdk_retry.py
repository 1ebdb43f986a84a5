"""A keyed client's SDK retry is a repeat of its earlier attempt, not a new request.

What OpenAI's Python SDK sends on a retry (openai 3.63, ``_base_client.py``): each attempt
is built again from the same options (``request()``: ``options = model_copy(input_options)``
in the ``for retries_taken in range(max_retries + 1)`` loop), its body serialised again
by ``openapi_dumps(json_data)`` from the same data, so the **body bytes are identical**
between attempts; the headers differ only in ``x-stainless-retry-count``
(``_build_headers``: ``headers["x-stainless-retry-count"] = str(retries_taken)``, 0 for
the first attempt, unless the caller set or removed it). It makes an idempotency key for
every non-GET request (``stainless-python-retry-<uuid4>``) but sends it only under
``self._idempotency_header``, which is ``None`` for OpenAI's client (set nowhere): **no
``Idempotency-Key`` goes out**. It retries a connection error or a timeout (the answer
lost on the way, or the client's own read timeout shorter than the run), and 408, 409,
429 and 5xx unless ``x-should-retry`` says no, twice by default, after 0.5 s then 1 s
(less up to 25 % jitter; at most 8 s a wait, or the answer's ``Retry-After`` up to 2 min).

So a keyed request with the marker and no id of its own is given an implicit one
(:func:`implicit_key`): its key's scope, its path and the SHA-256 of its body bytes
(:func:`body_digest`; never the prompt). An attempt with count 0 always runs, and becomes
the one that key's later retries (count >= 1) of the same bytes refer to, for
:data:`DEFAULT_WINDOW_S` after it ended (``registry/idempotency.py``, ``admit.py``).
"""

from __future__ import annotations

import hashlib

__all__ = [
    "DEFAULT_WINDOW_S",
    "HEADER",
    "MARK",
    "body_digest",
    "implicit_key",
    "is_implicit",
    "retry_count",
]

#: the SDK's retry marker (lower case: as the ASGI layer gives header names)
HEADER = "x-stainless-retry-count"
#: how long after an attempt ended a retry of it is still a repeat of it (seconds): well
#: past the SDK's own span (its waits, 0.5 s then doubling up to 8 s: ~40 s for 8 retries)
DEFAULT_WINDOW_S = 60.0
#: an implicit key's id: no client id can be it (ids are printable ASCII: parse.client_id)
MARK = "\x00sdk-retry"
_MAX_COUNT = 1000  # the SDK caps its own count there


def retry_count(value: str | None) -> int | None:
    """The marker's count: an attempt's number (0 the first); ``None`` when there is no
    marker or it is not a count (then the request is not the SDK's: it runs as before)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 4:
        return None
    count = int(value)
    return count if count <= _MAX_COUNT else None


def body_digest(raw: bytes) -> str:
    """SHA-256 (hex) of a request's body bytes as the client sent them."""
    return hashlib.sha256(raw).hexdigest()


def implicit_key(path: str, scope: str, digest: str) -> str:
    """The idempotency key of a keyed request's SDK attempts: ``path scope MARK digest``
    (the shape of a client id's key, ``admit.IdempotencyCheck``, with :data:`MARK` for
    the id)."""
    return f"{path} {scope} {MARK} {digest}"


def is_implicit(key: str) -> bool:
    """Whether an idempotency key is an :func:`implicit_key`."""
    return f" {MARK} " in key
