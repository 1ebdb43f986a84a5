"""The send stage's refusal when the router has no node for a request's first attempt
(:mod:`~LLM_Mesh.registry.send`): 429 ``overloaded`` when every node is full, else 503
``model_unavailable``, naming the models that would answer under the request's
constraints; ``hopeless`` (``x-should-retry: false``, ``core/client_retry.py``) when no
node serves the model within them at all and none is only held out by its own 503 (a
wait). A model whose only nodes are paused or draining is hopeless too, and says how they
come back: their operator's ``llm-mesh node resume`` (found 2026-12-06, newuser35: it said
``true``, so ``ask --model`` and OpenAI's SDKs waited out two retries, 20 s, for a node no
one was resuming, while task routing failed at once; polish32 had made it ``true`` on
README's "a paused node may resume", but an operator's pause is not undone within a
client's retries)."""

from __future__ import annotations

import math

from LLM_Mesh.core.balancer import Decision, Verdict
from LLM_Mesh.core.client_retry import RESTING_SAID
from LLM_Mesh.core.scoring import UNKNOWN_REGION
from LLM_Mesh.errors import MeshError, ModelUnavailable, Overloaded
from LLM_Mesh.registry.extensions import Extensions

__all__ = ["constraints_said", "no_node"]

_MAX_SAID = 8  # regions named at most (the rest counted)
_MAX_CHARS = 40  # of each (a client's text: printable characters only, cut)


def _shown(region: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in region[: _MAX_CHARS + 1])
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS] + "…"


def _whose(ext: Extensions) -> str:
    """Whose the regions are, as it applies; ``""`` when not known."""
    if ext.request_regions and ext.key_regions:
        return " (the request's and its API key's)"
    if ext.key_regions:
        return " (the API key's)"
    return " (the request's)" if ext.request_regions else ""


def constraints_said(ext: Extensions) -> str:
    """The request's routing constraints in words, ``""`` for none: what narrowed the nodes
    (found 2026-12-06, newuser35: a key made with ``--strict-regions`` was refused "within
    the request's constraints" on ``up``'s node, which declares no region, while its user
    had sent none: the key's own regions count, and nothing said which). Whose regions
    they are is said as it applies: the request's, its API key's, or both (found
    2026-12-07, newuser44: a request sent with no key was told "the request's and its API
    key's")."""
    regions: list[str] = []
    named = sorted(r for r in ext.avoid_regions if r != UNKNOWN_REGION)
    if named:
        more = len(named) - _MAX_SAID
        regions.append(
            "avoid_regions "
            + ", ".join(map(_shown, named[:_MAX_SAID]))
            + (f" and {more} more" if more > 0 else "")
        )
    if UNKNOWN_REGION in ext.avoid_regions:
        regions.append("strict_regions: no node of undeclared region")
    parts = [", ".join(regions) + _whose(ext)] if regions else []
    if ext.allow_nodes is not None:
        parts.append(f"allow_nodes: {len(ext.allow_nodes)} named")
    if ext.deny_nodes:
        parts.append(f"deny_nodes: {len(ext.deny_nodes)} named")
    if ext.trusted_only:
        parts.append("trusted_only")
    return "; ".join(parts)


def no_node(
    d: Decision, model: str, up: list[str], retry_after_s: int, *, constrained: str,
    full: str = "", resting: int = 0, keeping: int = 0,
) -> MeshError:  # fmt: skip
    """The refusal for ``d`` (not ``OK``) of a request for ``model``; ``up``: the models a
    healthy node hosts that the request's constraints permit; ``constrained``: those
    constraints in words (:func:`constraints_said`), ``""`` for none; ``retry_after_s``: what
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
    named = f" ({constrained})" if constrained else ""
    said = (
        f"no healthy node serves {model!r} right now{within}{named} (models up{within}: {listed})"
    )
    extra: dict[str, int] = {}
    if resting and model not in up:
        nodes = "1 node hosting it is" if resting == 1 else f"{resting} nodes hosting it are"
        said += f"; {nodes} {RESTING_SAID}"
        extra = {"resting": resting}
    hopeless = d.wait_s is None and model not in up
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
