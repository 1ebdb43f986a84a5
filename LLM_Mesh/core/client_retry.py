"""Whether a client's retry of an error answer can help soon: the ``x-should-retry`` header.

OpenAI's SDKs obey ``x-should-retry: true|false`` before their own rule (the Python
SDK's ``_should_retry``: otherwise 408, 409, 429 and every 5xx are retried, twice by
default, each after the answer's ``Retry-After`` when it is at most 2 min). Without the
header a 503 for a model no node serves was retried twice, ``Retry-After: 10`` waited
out each time: the error reached the user after ~21 s (found 2026-12-05), where the
gateway had answered at once.

:func:`should_retry` is the one rule, for every error answer of the registry's ``/v1``
and ``/mesh`` (``registry/errors.py``, ``body_limit.py``'s 413, ``slow_clients.py``'s 431,
``registry/relay.py``'s node refusals) and the node's (``node/app.py``):

- ``False`` where a retry cannot help soon: no node serves the model at all, or none
  within the request's constraints (``hopeless``); any other 4xx but 408 and 429 (the
  client's own request: bad, unknown model, not paid, not allowed, a request id that
  already ran, 409 ``duplicate_request``, which is never run twice); a wait longer than
  :data:`SOON_S`;
- ``True`` where it can: 408; 429 (a full node, a client over its rate) and 503 (a node
  draining or paused, the database busy) with a ``Retry-After`` within :data:`SOON_S`;
- ``None`` (no header: the client's own rule) for other 5xx (a node failed, a timeout).
"""

from __future__ import annotations

__all__ = ["HEADER", "SOON_S", "retry_header", "should_retry"]

#: the header OpenAI's SDKs read (lower case: how the ASGI layer and HTTP/1.1 write it)
HEADER = "x-should-retry"
#: the longest wait that is still "soon": a client waits for a retry at most this long
SOON_S = 60.0


def should_retry(
    status: int, retry_after: float | None = None, *, hopeless: bool = False
) -> bool | None:
    """Whether a client should retry an error answer of ``status`` (module docstring);
    ``retry_after``: its ``Retry-After`` in seconds, if any; ``hopeless``: no node serves
    the model (within the request's constraints), so no retry can answer soon."""
    if hopeless:
        return False
    if status in (429, 503):
        return retry_after is None or retry_after <= SOON_S
    if status == 408:
        return True
    if 400 <= status < 500:
        return False
    return None


def retry_header(
    status: int, retry_after: float | None = None, *, hopeless: bool = False
) -> dict[str, str]:
    """:func:`should_retry`'s verdict as the answer's header (none without one)."""
    verdict = should_retry(status, retry_after, hopeless=hopeless)
    if verdict is None:
        return {}
    return {HEADER: "true" if verdict else "false"}
