"""A node's own refusal and its one second opinion: what the send stage holds, whom it blames.

The policy is :class:`~LLM_Mesh.core.failover.Failover`'s (``Meaning.REJECTED``); the send
stage (:class:`~LLM_Mesh.registry.send.Exchange`) holds the refusal here and, when the
policy names the refusing node (``Failover.accepted``), blames it here.

A node's own refusal (a 4xx other than 401 and 429) of a request the gateway validated
gets one second opinion per request: one other node, at once, from the failover allowance.
If that node takes the request (its 200), the client gets its answer, never the refusing
node's words, and the refusal counts against the refusing node like a server error
(``Routing.blame``: success EWMA, outlier ejection): a node that refuses what others serve
is broken or hostile. Exempt: a ``context_length_exceeded`` refusal from a node declaring
a smaller context for the model than the node that answered (honest: its exact count is
over its own context); a ``request_too_large`` (413) of a client body within
:data:`~LLM_Mesh.core.limits.GATEWAY_MARGIN_BYTES` of the gateway's ``max_body_bytes``
(honest: the members the gateway adds took it past an older node's limit equal to the
gateway's; a current node allows the margin, ``node/app.py``; found 2026-12-05). If the other node refuses too, or none is left, or the request
stops for another reason, the *first* refusal is the answer (the relay passes it on) and
no node is blamed. Either way the refused attempt did no work: it is not charged.
"""

from __future__ import annotations

from typing import NamedTuple

from LLM_Mesh.core.balancer import Attempt
from LLM_Mesh.core.limits import grown_past
from LLM_Mesh.core.node_refusal import MAX_BODY_BYTES, node_refusal
from LLM_Mesh.errors import ContextLengthExceeded, PayloadTooLarge
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.node_client import NodeResponse
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["Rejection", "hold", "overruled"]


class Rejection(NamedTuple):
    """A request's first node refusal, awaiting its second opinion: the refusing node, its
    answer (the relay's if no other node takes the request) and its ended attempt."""

    node_id: str
    resp: NodeResponse
    att: Attempt


def hold(node_id: str, resp: NodeResponse, att: Attempt) -> Rejection:
    """``node_id``'s refusal held for its second opinion; a body longer than
    :data:`~LLM_Mesh.core.node_refusal.MAX_BODY_BYTES` is read as no body anyway, so it is
    not held that long."""
    if len(resp.content) > MAX_BODY_BYTES:
        resp.content = b""
    return Rejection(node_id, resp, att)


def overruled(rt: Runtime, job: Job, rejection: Rejection | None, answerer: str) -> None:
    """``answerer`` took the request ``rejection``'s node refused: that refusal counts as
    its node's failure, unless it is an honest context refusal (see the module docstring)."""
    if rejection is None:  # pragma: no cover - the policy names a node only after one
        return
    refuser, resp, att = rejection
    code = node_refusal(resp.status_code, resp.content).code
    honest = code == ContextLengthExceeded.code and (
        _context(rt, job, refuser) < _context(rt, job, answerer)
    )
    if code == PayloadTooLarge.code:  # the gateway's own members past an older node's limit
        honest = grown_past(len(job.raw), rt.settings.limits.max_body_bytes)
    if not honest:
        rt.routing.blame(att)


def _context(rt: Runtime, job: Job, node_id: str) -> int:
    """The context ``node_id`` declares for the job's model (else the catalog's; 0)."""
    hosted = rt.table.hosted(node_id, job.model)
    ctx = hosted.context_length if hosted is not None else None
    return ctx or job.catalog_context or 0
