"""``llm-mesh ask --avoid eu,us[,unknown]``: found 2026-12-05 (a new user), the
migration guide says users can ask to avoid regions, the gateway takes ``avoid_regions``,
but ``ask`` had no way to send it (only an API key made with ``--avoid-regions`` did)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from LLM_Mesh.cli.demo import ask_once
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import ModelUnavailable
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh


@pytest.mark.parametrize("stream", [False, True])
async def test_ask_never_goes_to_an_avoided_region(
    inprocess_mesh: InProcessMesh, stream: bool
) -> None:
    mesh = inprocess_mesh
    for name, region in (("eu", "eu-west"), ("us", "us-east"), ("nowhere", None)):
        mesh.add_node(["mistral-7b"], node_id=f"node-{name}", region=region)
    eu, us = mesh.id_of("node-eu"), mesh.id_of("node-us")
    for avoid, strict, allowed in ((["eu"], False, ("node-us", "node-nowhere")),
                                   (["eu"], True, ("node-us",))):  # fmt: skip
        for _ in range(4):
            buf = io.StringIO()
            await ask_once(
                Console(file=buf, width=200, color_system=None), REGISTRY_URL, "hi",
                model="mistral-7b", task=None, stream=stream, chat=False, max_tokens=4,
                temperature=None, fallback=False, http_client=mesh.client(),
                avoid_regions=avoid, strict_regions=strict,
            )  # fmt: skip
            said = buf.getvalue()
            assert eu not in said, said
            assert any(mesh.id_of(n) in said for n in allowed), said
    assert us


def test_ask_help_names_the_region_options() -> None:
    out = CliRunner().invoke(app, ["ask", "--help"], env={"COLUMNS": "80"}).output
    assert "--avoid" in out and "'unknown' in it" in out, out


def test_ask_avoid_reads_unknown_as_strict() -> None:
    from LLM_Mesh.cli.network_commands import _regions

    assert _regions("eu, us") == {"avoid_regions": ["eu", "us"], "strict_regions": False}
    assert _regions("eu,Unknown") == {"avoid_regions": ["eu"], "strict_regions": True}
    assert _regions(None) == {"avoid_regions": [], "strict_regions": False}


@pytest.mark.parametrize("stream", [False, True])
async def test_ask_by_task_takes_the_tasks_best_within_the_avoided_regions(
    inprocess_mesh: InProcessMesh, stream: bool
) -> None:
    """Found 2026-12-05 (a new user): ``llm-mesh ask "hi" --task chat --avoid eu`` picked
    ``mistral-7b`` (the task's best anywhere), whose only node was in ``eu-west``, and
    failed ("with --fallback gemma-3-270m answers"): no ``--model`` was given, so the task's
    best among the models up outside eu answers, with no "(fallback from ...)" note."""
    mesh = inprocess_mesh
    mesh.add_node("mistral-7b", node_id="node-mistral-eu", region="eu-west")
    mesh.add_node("gemma-3-270m", node_id="node-gemma-us", region="us-east")
    buf = io.StringIO()
    await ask_once(
        Console(file=buf, width=200, color_system=None), REGISTRY_URL, "hi",
        model=None, task="chat", stream=stream, chat=False, max_tokens=4,
        temperature=None, fallback=False, http_client=mesh.client(), avoid_regions=["eu"],
    )  # fmt: skip
    said = buf.getvalue()
    assert "model gemma-3-270m" in said and "SIMULATED" in said, said
    assert mesh.id_of("node-gemma-us") in said and "fallback" not in said, said


@pytest.mark.parametrize("stream", [False, True])
async def test_ask_allow_prompt_keeping_reaches_a_node_that_may_keep_prompts(
    inprocess_mesh: InProcessMesh, stream: bool
) -> None:
    """A node declaring ``keeps_no_prompts = false`` is held out by default (found
    2026-12-06, attack33): ``ask`` says how to opt in (its flag), and with
    ``--allow-keep`` it answers."""
    mesh = inprocess_mesh
    mesh.add_node(["mistral-7b"], node_id="node-keeper", keeps_no_prompts=False)
    keeper = mesh.id_of("node-keeper")
    ask: dict[str, Any] = dict(
        model="mistral-7b", task=None, stream=stream, chat=False, max_tokens=4,
        temperature=None, fallback=False, http_client=mesh.client(),
    )  # fmt: skip
    buf = io.StringIO()
    with pytest.raises(ModelUnavailable) as caught:
        await ask_once(Console(file=buf, width=200), REGISTRY_URL, "hi", **ask)
    assert "may keep prompts" in caught.value.message
    if not stream:  # the CLI's words for the option
        assert "pass --allow-keep" in caught.value.message
    assert keeper not in buf.getvalue()
    buf = io.StringIO()
    await ask_once(
        Console(file=buf, width=200, color_system=None), REGISTRY_URL, "hi",
        allow_prompt_keeping=True, **ask,
    )  # fmt: skip
    assert keeper in buf.getvalue(), buf.getvalue()


def test_ask_help_names_the_prompt_keeping_option() -> None:
    out = CliRunner().invoke(app, ["ask", "--help"], env={"COLUMNS": "200"}).output
    assert "--allow-keep" in out, out
