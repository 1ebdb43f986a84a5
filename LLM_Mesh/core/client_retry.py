"""Whether a client's retry of an error answer can help soon: the ``x-should-retry`` header.

OpenAI's SDKs obey ``x-should-retry: true|false`` before their own rule (the Python
SDK's ``_should_retry``: otherwise 408, 409, 429 and every 5xx are retried, twice by
default, each after the answer's ``Retry-After`` when it is at most 2 min, else after a
backoff of 0.5 s, then 1 s). A retry of the SDK is a new request to the gateway: the
Python SDK sends no ``Idempotency-Key`` (openai 3.x: its ``_idempotency_header`` is
``None``; it sends only ``x-stainless-retry-count``), so each retry runs the model again.
Found 2026-12-05: without the header a 503 for a model no node serves was retried twice,
``Retry-After: 10`` waited out each time (~21 s where the gateway had answered at once);
and a 504 of a request that used its whole deadline (120 s, a real model on a loaded
machine) was run twice more: one call took 6 minutes.

:func:`should_retry` is the one rule, for every error answer of the registry's ``/v1``
and ``/mesh`` (``registry/errors.py``, ``body_limit.py``'s 413, ``slow_clients.py``'s 431,
``registry/relay.py``'s node refusals) and the node's (``node/app.py``). Every error
answer carries the header; by what the answer means:

- ``True`` where a retry can help soon: 408; 429 (a full node, a client over its rate)
  and 503 (a node draining or paused, the database busy) with a ``Retry-After`` within
  :data:`SOON_S`; a 502 (every node the request tried failed) only with a ``Retry-After``
  within :data:`SOON_S` that the gateway estimated: a node this request has not tried
  would take it now or then (:func:`retry_estimate`, from the router's decision), or one
  it tried is back by then: the end of its ejection, or of the rest a node its pool could
  not spare is given instead (``core/outlier.py``: 30 s, then 60 s for its next failure,
  ... so a one-node model's node failing again and again soon says ``false``; found
  2026-12-05, ``small31``: a one-node model's 502 said ``false`` after any failure);
- ``False`` where it cannot:

  - no node serves the model at all, or none within the request's constraints
    (``hopeless``); a wait longer than :data:`SOON_S`;
  - any other 4xx (the client's own request: bad, unknown model, not paid, not allowed,
    a request id that already ran, 409 ``duplicate_request``, which is never run twice);
  - 504 ``upstream_timeout``: the request used its whole deadline (the registry's
    ``request_timeout_s``) and a retry would most likely take as long again; its message
    says what to change (:func:`deadline_message`: fewer tokens, a stream);
  - a 502 without an estimate: every node that would take it failed it and none is back
    within :data:`SOON_S` (the gateway already failed over between nodes, up to
    ``max_attempts``: a client's retry sooner would multiply the work on a failing fleet)
    or it left routing for the model (goodbye, revoked, offline, quarantined), the
    gateway's retry budget is spent (many requests fail: retries are shed, not added), or
    its deadline passed;
  - 500: a fault in the gateway's own code or a node's engine, which a retry most likely
    meets again; and an answer may have been paid before the fault (its id is then held:
    ``registry/idempotency.py``), which a retry without an id would run and pay again;
  - any other 5xx.

The project's own client (``LLM_Mesh/client.py``: ``llm-mesh ask``, the seed API) obeys it
too (:func:`client_advice`; found 2026-12-05: it failed over on every 5xx, so a 504 that
used the whole deadline ran again on the next replica with the same request id, which a
failed request frees: ``registry/idempotency.py``): ``false``: the error is raised, no
other gateway asked; ``true``: asked again after the answer's ``Retry-After`` (1 s
without one), the next gateway in turn first, at most :data:`CLIENT_RETRIES` times a call
and never for a wait over :data:`CLIENT_MAX_WAIT_S`; no header (an older gateway): the
client's own rule as before. A gateway that does not answer (refused, reset, hung) is no
answer: the client fails over as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from LLM_Mesh.core.route_types import Decision, Verdict

__all__ = [
    "ASK_ADVICE",
    "CLIENT_DEFAULT_WAIT_S",
    "CLIENT_MAX_WAIT_S",
    "CLIENT_RETRIES",
    "CLI_NO_KEY_HINT",
    "HEADER",
    "NO_KEY_HINT",
    "RESTING_SAID",
    "SEED_ADVICE",
    "SEED_NO_KEY_HINT",
    "SOON_S",
    "STREAM_ADVICE",
    "client_advice",
    "client_wait",
    "deadline_message",
    "fitted_advice",
    "retry_estimate",
    "retry_header",
    "should_retry",
]

#: the header OpenAI's SDKs read (lower case: how the ASGI layer and HTTP/1.1 write it)
HEADER = "x-should-retry"
#: the longest wait that is still "soon": a client waits for a retry at most this long
SOON_S = 60.0


#: the most times the project's client asks again after answers that say ``true`` (one
#: call, all gateways together; OpenAI's SDKs: 2)
CLIENT_RETRIES = 2
#: the longest ``Retry-After`` the project's client waits out; a longer one is raised
CLIENT_MAX_WAIT_S = SOON_S
#: its wait after a ``true`` without a ``Retry-After`` (or one it cannot read)
CLIENT_DEFAULT_WAIT_S = 1.0


def client_advice(headers: Mapping[str, str]) -> tuple[bool, float] | None:
    """What an error answer's ``headers`` tell the project's client: ``None`` when they say
    nothing (no :data:`HEADER`, or neither ``true`` nor ``false``: the client's own rule),
    else ``(retry, wait_s)``: whether to ask again, after how long (``Retry-After`` in
    seconds; :data:`CLIENT_DEFAULT_WAIT_S` without one; an HTTP date is not read)."""
    said = (headers.get(HEADER) or "").strip().lower()
    if said not in ("true", "false"):
        return None
    if said == "false":
        return False, 0.0
    try:
        wait = float(headers.get("retry-after") or CLIENT_DEFAULT_WAIT_S)
    except ValueError:
        wait = CLIENT_DEFAULT_WAIT_S
    if not math.isfinite(wait):
        return True, math.inf
    return True, max(0.0, wait)


def client_wait(
    advice: tuple[bool, float], retries: int, *, left_s: float = math.inf
) -> float | None:
    """The seconds to wait before asking again after an answer of ``advice``
    (:func:`client_advice`), ``retries`` asked again already in the call and ``left_s``
    left of its own bound; ``None``: raise the error (``false``, retries spent, a wait
    over :data:`CLIENT_MAX_WAIT_S` or past the bound)."""
    retry, wait = advice
    if not retry or retries >= CLIENT_RETRIES or wait > CLIENT_MAX_WAIT_S or wait >= left_s:
        return None
    return wait


def should_retry(status: int, retry_after: float | None = None, *, hopeless: bool = False) -> bool:
    """Whether a client should retry an error answer of ``status`` (module docstring);
    ``retry_after``: its ``Retry-After`` in seconds, if any (a 502's: the gateway's
    estimate); ``hopeless``: no node serves the model (within the request's constraints),
    so no retry can answer soon."""
    if hopeless:
        return False
    if status == 408:
        return True
    if status in (429, 503):
        return retry_after is None or retry_after <= SOON_S
    if status == 502:  # only with the gateway's estimate of a node that would take it
        return retry_after is not None and retry_after <= SOON_S
    return False  # the client's own 4xx; 500, 504 and any other 5xx


def retry_header(
    status: int, retry_after: float | None = None, *, hopeless: bool = False
) -> dict[str, str]:
    """:func:`should_retry`'s verdict as the answer's header."""
    return {HEADER: "true" if should_retry(status, retry_after, hopeless=hopeless) else "false"}


def retry_estimate(d: Decision, back_s: float | None = None) -> int | None:
    """A 502's ``Retry-After`` from the router's decision ``d`` for the same request
    without the nodes it tried and ``back_s``, when the soonest of those is back (None: none
    will be): 1 s when another node would take it now, else the sooner of the router's wait
    (a saturated model's, the end of an untried node's hold) and ``back_s``; ``None`` when
    neither is known (no node: no retry soon)."""
    if d.verdict is Verdict.OK:
        return 1
    waits = [w for w in (d.wait_s, back_s) if w is not None and math.isfinite(w)]
    return max(1, math.ceil(min(waits))) if waits else None


#: how a paused or draining node comes back: its operator's command, not a retry (said at
#: once, ``x-should-retry: false``: found 2026-12-06, newuser35)
RESTING_SAID = (
    "paused or draining: out of routing until its operator runs `llm-mesh node resume` "
    "(a retry soon will not find it back)"
)
#: a 504's advice to an HTTP client that did not stream (the gateway's own words)
STREAM_ADVICE = (
    "Ask for fewer tokens (a smaller max_tokens) or a shorter prompt, or stream the "
    "answer (stream: true: only its first token is held to the deadline)"
)
#: what a stream whose first token came too late is told to change
FIRST_TOKEN_ADVICE = "Ask for a shorter prompt or a smaller model"
#: the same to a caller of the seed API, which does not stream (found 2026-12-06,
#: newuser35: ``get_model_response`` was told ``stream: true``, an option it has not)
SEED_ADVICE = (
    "Ask for fewer tokens (a smaller max_tokens) or a shorter prompt, or raise the deadline "
    "where the registry runs (LLM_MESH_REQUEST_TIMEOUT_S=300 llm-mesh up): "
    "get_model_response and handle_task wait for the whole answer, they do not stream"
)
#: the same to ``llm-mesh ask`` without ``--stream``
ASK_ADVICE = (
    "Ask for fewer tokens (a smaller --max-tokens) or a shorter prompt, or stream the "
    "answer (llm-mesh ask --stream: only its first token is held to the deadline)"
)


#: a gateway's 401 for a wrong or revoked API key: how an HTTP client goes without one
NO_KEY_HINT = "send no Authorization header (or 'Bearer anonymous') to use the mesh without a key"
#: the same to a user of the ``llm-mesh`` commands, which send the header themselves (found
#: 2026-12-07, newuser43: ``ask --api-key lmk_typo`` was told of an Authorization header)
CLI_NO_KEY_HINT = "leave out --api-key (and unset LLM_MESH_API_KEY) to use the mesh without a key"
#: the same to a caller of the seed API (``get_model_response``, ``handle_task``), whose key
#: is ``DistributedModelRegistry(api_key=...)``'s, else ``LLM_MESH_API_KEY`` as read at the
#: registry's first request (found 2026-12-07, words43: told of the HTTP header too)
SEED_NO_KEY_HINT = (
    "unset LLM_MESH_API_KEY (read at the first request) and give DistributedModelRegistry "
    "no api_key to use the mesh without a key"
)


def fitted_advice(message: str, advice: str) -> str:
    """A gateway's 504 ``message`` with its advice to an HTTP client (:data:`STREAM_ADVICE`)
    said as ``advice`` instead, fit for the caller that reads it; any other message as is."""
    return message.replace(STREAM_ADVICE, advice)


def deadline_message(node: str, kind: str, deadline_s: float, *, stream: bool = False) -> str:
    """A 504's message: the request used its whole deadline, and what to change (a
    ``stream``: its first token did not come in time, so not "stream it"). It names the
    setting by its environment variable (found 2026-12-06, newuser35: ``request_timeout_s``
    alone named nothing an ``llm-mesh up`` user could set; ``LLM_MESH_REQUEST_TIMEOUT_S=300
    llm-mesh up`` raises it)."""
    change = FIRST_TOKEN_ADVICE if stream else STREAM_ADVICE
    return (
        f"node {node} did not answer within the request's deadline of {deadline_s:g} s "
        f"({kind}; the registry's request_timeout_s, LLM_MESH_REQUEST_TIMEOUT_S where it "
        f"runs): a retry would most likely take as long again. {change}"
    )
