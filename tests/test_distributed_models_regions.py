"""distributed_models and the request's regions and prompt keeping: avoided regions, the
fallback hint and task routing within the regions."""

from __future__ import annotations

import pytest

from LLM_Mesh.errors import (
    ModelUnavailable,
)
from tests.distributed_models_fixtures import make
from tests.inprocess_mesh import InProcessMesh


async def test_get_response_and_handle_task_avoid_regions(inprocess_mesh: InProcessMesh) -> None:
    """Found 2026-12-05 (a new user): the migration guide says users can ask to avoid
    regions, and the gateway takes ``avoid_regions`` in the body, but its Python API had no
    way to send it: ``get_model_response(..., avoid_regions=["eu"])`` was a TypeError."""
    from LLM_Mesh.mesh_manager import MeshManager

    mesh = inprocess_mesh
    for name, region in (("eu", "eu-west"), ("us", "us-east"), ("nowhere", None)):
        mesh.add_node(["mistral-7b"], node_id=f"node-{name}", region=region)
    eu, us, nowhere = (mesh.id_of(f"node-{n}") for n in ("eu", "us", "nowhere"))
    reg = make(mesh)
    for _ in range(6):
        r = await reg.get_response("mistral-7b", "hi", avoid_regions=["EU"], max_tokens=4)
        assert r.node_id in (us, nowhere)
    r = await reg.get_response("mistral-7b", "hi", avoid_regions="eu", strict_regions=True)
    assert r.node_id == us
    t = await MeshManager(reg).handle_task_async(
        "general", "hi", model="mistral-7b", avoid_regions=["us", "eu"]
    )
    assert t.node_id == nowhere
    assert eu not in {r.node_id, t.node_id}


async def test_get_response_allow_prompt_keeping(inprocess_mesh: InProcessMesh) -> None:
    """A node that may keep prompts is held out unless the seed API's
    ``allow_prompt_keeping=True`` opts in (found 2026-12-06, attack33)."""
    mesh = inprocess_mesh
    mesh.add_node(["mistral-7b"], node_id="node-keeper", keeps_no_prompts=False)
    reg = make(mesh)
    with pytest.raises(ModelUnavailable, match="allow_prompt_keeping: true"):
        await reg.get_response("mistral-7b", "hi", max_tokens=4)
    r = await reg.get_response("mistral-7b", "hi", max_tokens=4, allow_prompt_keeping=True)
    assert r.node_id == mesh.id_of("node-keeper")


async def test_the_fallback_hint_names_only_a_model_that_answers_under_the_regions(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Under ``avoid_regions``, "with fallback=True X answers" named a model whose only node
    is in an avoided region too (found 2026-12-05): the 503 names the models up within the
    request's constraints, and the hint only one of them."""
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", node_id="node-gemma-eu", region="eu-west")
    mesh.add_node("mistral-7b", node_id="node-mistral-us", region="us-east")
    reg = make(mesh)
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python", avoid_regions=["eu"])
    assert "fallback" not in info.value.message
    assert info.value.available == ["mistral-7b"]
    with pytest.raises(ModelUnavailable) as info:  # not tried on gemma: it would not answer
        await reg.get_response(
            "code-llama-7b", "def f():", "python", avoid_regions=["eu"], fallback=True
        )
    assert "no model of the same specialty is up for fallback" in info.value.message
    assert [c["model"] for c in mesh.completions] == ["code-llama-7b"] * 2
    # a gemma node outside the avoided region: now it answers, and the hint names it
    mesh.add_node("gemma-3-270m", node_id="node-gemma-us", region="us-east")
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python", avoid_regions=["eu"])
    assert info.value.message.endswith("; with fallback=True gemma-3-270m answers (same specialty)")


async def test_a_task_routed_request_takes_the_tasks_best_within_the_regions(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05 (a new user's ``llm-mesh ask "hi" --task chat --avoid eu``): with no
    model named, task routing picked the best model up anywhere, ``mistral-7b``, whose only
    node was in ``eu-west``, and the request failed ("with --fallback gemma-3-270m answers")
    though gemma-3-270m, a general model for chat, served outside eu. No model was asked for:
    the task's best among the models up within the request's constraints answers (the
    gateway's 503 names them: the key's own regions count too)."""
    from LLM_Mesh.mesh_manager import MeshManager

    mesh = inprocess_mesh
    mesh.add_node("mistral-7b", node_id="node-mistral-eu", region="eu-west")
    mesh.add_node("gemma-3-270m", node_id="node-gemma-us", region="us-east")
    reg = make(mesh)
    r = await reg.get_response(None, "hi", "chat", avoid_regions=["eu"], max_tokens=4)
    assert r.model == "gemma-3-270m" and r.fallback_from is None
    assert r.node_id == mesh.id_of("node-gemma-us") and r.simulated
    t = await MeshManager(reg).handle_task_async("chat", "hi", avoid_regions=["eu"])
    assert t.model == "gemma-3-270m"
    r = await reg.get_response(None, "hi", "chat", max_tokens=4)  # no constraint: the best
    assert r.model == "mistral-7b"
    # a model asked for by name is still that model, or the 503 and its hint
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("mistral-7b", "hi", "chat", avoid_regions=["eu"])
    assert "with fallback=True gemma-3-270m answers" in info.value.message
    with pytest.raises(ModelUnavailable):  # nothing up outside eu and us: the 503 itself
        await reg.get_response(None, "hi", "chat", avoid_regions=["eu", "us"])
