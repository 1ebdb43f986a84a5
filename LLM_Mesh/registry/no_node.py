"""The send stage's refusal when the router has no node for a request's first attempt
(:mod:`~LLM_Mesh.registry.send`): 429 ``overloaded`` when every node is full, else 503
``model_unavailable``, naming the models that would answer under the request's
constraints; ``hopeless`` (``x-should-retry: false``, ``core/client_retry.py``) when no
node serves the model within them at all, none is only held out by its own 503 and
none hosting it is paused or draining (found 2026-12-05, polish32: a paused-only model
said ``false``, README ``true``: a paused node may resume, which the registry hears at
its next heartbeat, ``Retry-After``)."""

from __future__ import annotations

import math

from LLM_Mesh.core.balancer import Decision, Verdict
from LLM_Mesh.errors import MeshError, ModelUnavailable, Overloaded

__all__ = ["no_node"]


def no_node(
    d: Decision, model: str, up: list[str], retry_after_s: int, *, constrained: bool,
    full: str = "", resting: int = 0, keeping: int = 0,
) -> MeshError:  # fmt: skip
    """The refusal for ``d`` (not ``OK``) of a request for ``model``; ``up``: the models a
    healthy node hosts that the request's constraints permit; ``retry_after_s``: what
    ``Retry-After`` says when no node is up (a heartbeat interval); ``full``: how to wait
    for a slot, or why a wait ran out; ``resting``: the model's nodes that are paused or
    draining (said, with ``resting`` in the body, when no node is up for it); ``keeping``:
    the model's nodes up that were held out because they may keep prompts (said, with how to
    opt in, and ``prompt_keeping`` in the body, when no node is up for it: no retry helps
    without the opt-in, ``core/prompt_keeping.py``)."""
    if d.verdict is Verdict.SATURATED:
        wait = d.wait_s or 1.0
        how = full or "send X-Mesh-Wait or mesh_wait_s to wait for a slot"
        return Overloaded(
            f"every node serving {model!r} is saturated; estimated wait {wait:.2f} s ({how})",
            retry_after=max(1, math.ceil(wait)),
            reason="saturated",
            wait_s=round(wait, 3),
            model=model,
        )
    within = " within the request's constraints" if constrained else ""
    listed = ", ".join(up) if up else "none"
    said = f"no healthy node serves {model!r} right now{within} (models up{within}: {listed})"
    extra: dict[str, int] = {}
    if resting and model not in up:
        nodes = "1 node hosting it is" if resting == 1 else f"{resting} nodes hosting it are"
        said += f"; {nodes} paused or draining (back when resumed)"
        extra = {"resting": resting}
    hopeless = d.wait_s is None and model not in up and not extra
    if keeping and model not in up:
        nodes = "1 node serving it" if keeping == 1 else f"{keeping} nodes serving it"
        said += (f"; {nodes} may keep prompts (keeps_no_prompts false), held out by "
                 "default: send allow_prompt_keeping: true, or use an API key made with `llm-mesh "
                 "registry keys create --allow-keep`, to route to them")  # fmt: skip
        extra["prompt_keeping"] = keeping
    return ModelUnavailable(
        said,
        model=model,
        available=up,
        # a node's 503 holds it out (paused, draining): back at the end of its Retry-After
        retry_after=retry_after_s if d.wait_s is None else max(1, math.ceil(d.wait_s)),
        hopeless=hopeless,
        reason="no_node",
        **extra,
    )
