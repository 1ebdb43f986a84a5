"""The send stage's per-request work cut on branch admit26: a node's context checked only
where it differs from the catalog's (the parse stage checked the catalog's with
``max_tokens or 1``, which this relies on being at least as strict as the send stage's
check with ``max_tokens``), and an unconstrained request's ``RouteRequest`` shared."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.core.validation import check_context
from LLM_Mesh.errors import ContextLengthExceeded
from LLM_Mesh.registry.extensions import NONE, Extensions
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.send import Exchange


def passes(prompt: str, max_tokens: int, context: int) -> bool:
    try:
        check_context(prompt, max_tokens, context, "m")
    except ContextLengthExceeded:
        return False
    return True


@pytest.mark.parametrize("context", [1, 2, 7, 64, 4096])
def test_what_the_parse_stage_passed_the_send_stage_would_pass(context: int) -> None:
    for chars in (0, 1, 5, 6, 7, 60, 6 * context - 6, 6 * context, 6 * context + 1):
        for max_tokens in (0, 1, 2, context - 1, context, context + 1):
            prompt = "x" * max(0, chars)
            if passes(prompt, max_tokens or 1, context):  # the parse stage's check
                assert passes(prompt, max_tokens, context), (chars, max_tokens)


def _exchange(
    max_tokens: int, ext: Extensions = NONE, keepers: frozenset[str] = frozenset()
) -> Exchange:
    spec = get_spec("mistral-7b")
    assert spec is not None
    job = Job(path="/v1/chat/completions", model="mistral-7b", body={}, raw=b"{}", stream=False,
              prompt_text="hi", max_tokens=max_tokens, price=spec.price, estimate=1,
              catalog_context=spec.context_length, request_id="req-1", started=0.0, ext=ext)  # fmt: skip
    # the nodes that may keep prompts (private33): routed around unless the request opts in
    routing = SimpleNamespace(
        keepers_for=lambda m, allowed=False: frozenset() if allowed else keepers
    )
    rt = SimpleNamespace(routing=routing, quality=None)
    return Exchange(rt, job)  # type: ignore[arg-type]


def _full(ex: Exchange) -> RouteRequest:
    """The route request as ``_route_request`` built every one until branch admit26."""
    ext = ex.ext
    return RouteRequest((ex.job.model,), expected_tokens=ex.job.max_tokens or None,
                        avoid_regions=ext.avoid_regions, allow_nodes=ext.allow_nodes,
                        deny_nodes=ext.deny_nodes, keepers=ext.allow_prompt_keeping,
                        exclude=frozenset(ex.tried))  # fmt: skip


@pytest.mark.parametrize(
    "ext",
    [NONE, Extensions(avoid_regions=frozenset({"eu"})), Extensions(allow_nodes=frozenset({"a"})),
     Extensions(allow_nodes=frozenset()), Extensions(deny_nodes=frozenset({"b"})),
     Extensions(wait_s=2.0, present=True)],
)  # fmt: skip
@pytest.mark.parametrize("max_tokens", [0, 1, 50])
def test_the_route_request_is_the_one_built_in_full(ext: Extensions, max_tokens: int) -> None:
    ex = _exchange(max_tokens, ext)
    assert ex._route_request() == _full(ex)
    assert ex._route_request().constrained == _full(ex).constrained
    ex.tried.add("n1")  # after an attempt: that node excluded, never a shared request
    assert ex._route_request() == _full(ex) and ex._route_request().exclude == {"n1"}


@pytest.mark.parametrize("allowed", [False, True])
def test_nodes_that_may_keep_prompts_are_denied_unless_the_request_opts_in(allowed: bool) -> None:
    """(private33's route filter: it broke this file's stub, which had no routing.)"""
    ex = _exchange(50, Extensions(allow_prompt_keeping=allowed), frozenset({"k"}))
    route = ex._route_request()
    assert route == _full(ex)
    # keeppick34: the router holds them out itself (Pool.open_keep), not a deny set of
    # every such node (O(such nodes) per pick: tests/core/test_route_keep.py)
    assert route.keepers is allowed and "k" not in route.deny_nodes
