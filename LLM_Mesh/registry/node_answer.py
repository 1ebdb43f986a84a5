"""A node's non-streamed answer, read as the send stage takes it: within the request's
bound, a JSON object, an answer, under the request's model.

:func:`bound_for` is the most an honest answer to the job can hold from a node that
declares a context (``core/answer_bound.py``; without ``max_tokens``, at that node's own
context: ``Job.limit_on``, as a stream's limit); the node client stops reading past its bytes
(``NodeClient.post_by(limit=...)``), :func:`read_answer` counts its containers before the
parser sees it. Anything past the bound, not a JSON object (``core/strict_json.py``) or no
answer (``core/answer_text.not_an_answer``), or one holding a lone UTF-16 surrogate escape
(``strict_json.refuse_lone_surrogates``: the gateway could not write it again) is
:class:`NotAnAnswer`: the node's protocol
error, failed over. The answer's top-level ``model`` is set to the request's (the catalog
id the client asked for: a node's own name for it never reaches the client).
"""

from __future__ import annotations

import math
from typing import Any

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.answer_bound import AnswerBound, alternatives, answer_bound, over_containers
from LLM_Mesh.core.answer_text import not_an_answer
from LLM_Mesh.registry.http1 import MAX_BODY_BYTES
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.node_client import NodeProtocolError

__all__ = ["NotAnAnswer", "bound_for", "nonstream_ttft", "read_answer"]


class NotAnAnswer(NodeProtocolError):
    """A node's 200 whose body is not a JSON object (or holds a non-finite number), holds
    more containers than the request's bound, or is no answer: a server error, fail over."""


def bound_for(job: Job, declared: object = None) -> AnswerBound:
    """The request's bound (``core/answer_bound.answer_bound``) on a node declaring
    ``declared`` as the model's context (``Job.limit_on``: without ``max_tokens``, that
    context, at most the job's), at most the transport's. Found 2026-12-05: the job's
    largest context bounded every node's answer, whatever context the node declared."""
    echo = job.echo
    return answer_bound(
        job.limit_on(declared),
        choices=job.choices,
        alternatives=alternatives(job.body),
        echo_chars=len(job.prompt_text) if echo else 0,
        echo_tokens=job.prompt_bound if echo else 0,
        ceiling=MAX_BODY_BYTES,
    )


def read_answer(content: bytes, bound: AnswerBound, model: str, choices: int = 1) -> dict[str, Any]:
    """The answer in ``content`` (see the module docstring), its ``model`` ``model``; its
    ``choices`` those of a request of ``choices`` (``n``; ``core/answer_text.choice_fault``)."""
    if (many := over_containers(content, bound.containers)) is not None:
        raise NotAnAnswer(
            f"the node's answer holds {many} JSON arrays and objects; this request's answer "
            f"needs at most {bound.containers}",
            "TooManyContainers",
        )
    try:  # NaN, Infinity, 1e400: not JSON either (core/strict_json.py)
        data = strict_json.loads_object(content)
    except (ValueError, RecursionError):  # nested past the parser's limit
        raise NotAnAnswer("the node's answer is not a JSON object") from None
    try:  # a lone surrogate escape: no text, nothing writes it (found 2026-12-05, stream32:
        strict_json.refuse_lone_surrogates(content, data)  # a 500, the node not blamed)
    except ValueError as exc:
        raise NotAnAnswer(f"the node's answer is not Unicode text: {exc}") from None
    if (why := not_an_answer(data, choices)) is not None:  # no answer: a failure too
        raise NotAnAnswer(why)
    if data.get("model") != model:  # the client's model, not the node's name for it
        data["model"] = model
    return data


def nonstream_ttft(node_mesh: Any, latency_ms: float) -> float | None:
    """The node's time to first token plus the gateway's and the network's share."""
    if not isinstance(node_mesh, dict):
        return None
    ttft, node_latency = node_mesh.get("ttft_ms"), node_mesh.get("latency_ms")
    if not isinstance(ttft, (int, float)) or not math.isfinite(ttft):
        return None
    overhead = latency_ms - node_latency if isinstance(node_latency, (int, float)) else 0.0
    if not math.isfinite(overhead):
        overhead = 0.0
    # within [0, end to end]: a negative ttft would make the node look fastest to the router
    return max(0.0, min(latency_ms, float(ttft) + max(0.0, overhead)))
