"""A node asks its registry for its own earnings (``GET /v1/earnings?node=<id>``) with its
operator's token: what ``llm-mesh node info`` shows (``NodeAgent.earnings``).

The answer is read whole within the timeout and at most ``MAX_EARNINGS_BYTES`` decoded
(``bounded_http.call``): a registry that answers without end is a failed call.
"""

from __future__ import annotations

from typing import Any

import httpx

from LLM_Mesh.bounded_http import AnswerRefused, AnswerTimedOut, call
from LLM_Mesh.errors import (
    InvalidCredential,
    RegistryUnreachable,
    UpstreamError,
    error_from_payload,
)
from LLM_Mesh.logs import log_text as said
from LLM_Mesh.node.agent_wire import answer_of

__all__ = ["MAX_EARNINGS_BYTES", "ask_earnings"]

MAX_EARNINGS_BYTES = 8 << 20  # the earnings report: a row per day, model and node


async def ask_earnings(
    client: httpx.AsyncClient,
    registry_url: str,
    node_id: str,
    operator_token: str | None,
    days: int,
    timeout: float,
) -> dict[str, Any]:
    """The registry's earnings report for ``node_id`` over ``days``.

    Raises :class:`~LLM_Mesh.errors.InvalidCredential` without an operator token,
    :class:`~LLM_Mesh.errors.RegistryUnreachable` when the registry does not answer, and the
    registry's own error (401 token, ...) as its exception.
    """
    if not operator_token:
        raise InvalidCredential(
            "this node has no operator token (operator_token in node.toml or "
            "LLM_MESH_OPERATOR_TOKEN): it cannot ask for its earnings"
        )
    try:
        r = await call(
            client, "GET", f"{registry_url}/v1/earnings", MAX_EARNINGS_BYTES,
            deadline_s=timeout, params={"node": node_id, "days": days},
            headers={"Authorization": f"Bearer {operator_token}"}, timeout=timeout,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise RegistryUnreachable(
            f"the registry at {registry_url} is unreachable ({exc!r}): no earnings"
        ) from None
    except AnswerRefused as exc:
        how = "timed out" if isinstance(exc, AnswerTimedOut) else "was refused"
        raise UpstreamError(f"the registry's earnings answer {how}: {said(exc)}") from None
    data: Any = answer_of(r)
    if data is None:
        data = r.text
    if r.status_code >= 400:
        raise error_from_payload(r.status_code, data)
    if not isinstance(data, dict):
        raise UpstreamError(
            f"the registry's earnings answer was not understood: {said(r.text, 200)}"
        )
    return data
