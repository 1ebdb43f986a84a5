"""An admin's private canary prompts (``LLM_MESH_CANARY_PROMPTS``): read at start, an
invalid file stops it with a clear error, probes draw them and references are asked for
them as for the public pool's."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary_fresh import DEFAULT_FRESH_SHARE
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.canary_scheduler import load_pool
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    honest,
    prober,
    prompt_of,
    register,
    requantised,
    trust,
)
from tests.registry.helpers import make_settings, running

PRIVATE = ("def private_helper(rows):\n    ", "The quarterly report shows")


def pool_file(tmp_path: Path, prompts: object = PRIVATE) -> Path:
    path = tmp_path / "canary-prompts.json"
    path.write_text(json.dumps(prompts), encoding="utf-8")
    return path


def test_the_settings_read_the_file_and_mode_from_the_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"LLM_MESH_CANARY_PROMPTS": str(tmp_path / "p.json"),
                           "LLM_MESH_CANARY_PROMPTS_MODE": "Replace"})  # fmt: skip
    assert s.canary_prompts == tmp_path / "p.json" and s.canary_prompts_mode == "replace"
    default = Settings.from_env({})
    assert default.canary_prompts is None and default.canary_prompts_mode == "mix"
    assert default.canary_fresh_share == DEFAULT_FRESH_SHARE == 0.5
    assert Settings.from_env({"LLM_MESH_CANARY_FRESH_SHARE": "0"}).canary_fresh_share == 0.0
    for bad in ("1.5", "-0.1", "nan", "half"):
        with pytest.raises(ValueError, match="LLM_MESH_CANARY_FRESH_SHARE must be"):
            Settings.from_env({"LLM_MESH_CANARY_FRESH_SHARE": bad})
    with pytest.raises(ValueError, match="LLM_MESH_CANARY_PROMPTS_MODE must be mix or replace"):
        Settings.from_env({"LLM_MESH_CANARY_PROMPTS_MODE": "both"})


def test_load_pool_mixes_replaces_and_names_a_bad_file(tmp_path: Path) -> None:
    path = pool_file(tmp_path)
    assert load_pool(None) == PROMPTS
    assert load_pool(path) == (*PROMPTS, *PRIVATE)
    assert load_pool(path, "replace") == PRIVATE
    with pytest.raises(
        ValueError, match=re.escape(f"the canary prompt file {tmp_path}/gone.json: no such file")
    ):
        load_pool(tmp_path / "gone.json")
    bad = pool_file(tmp_path, ["ok", 3])
    with pytest.raises(ValueError, match=re.escape(f"the canary prompt file {bad}: item 2")):
        load_pool(bad)


async def test_probes_draw_the_private_prompts_and_the_reference_is_asked_for_them(
    tmp_path: Path,
) -> None:
    async with running(
        tmp_path, nodes=LogprobNodes(), canary_prompts=pool_file(tmp_path),
        canary_prompts_mode="replace",
    ) as h:  # fmt: skip
        await register(h, "verifier", honest)
        await register(h, "honest", honest)
        await register(h, "liar", requantised)
        await trust(h, "verifier")
        p = prober(h)
        assert tuple(p.prompts) == PRIVATE
        p.fresh_share = 0.0  # the pool's prompts alone (fresh ones: test_canary_fresh.py)
        seen = set()
        for seed in range(12):
            p.rng = random.Random(seed)
            r = await p.probe("honest", MODEL)
            assert r.verdict in ("pass", "unverified") and r.prompt in PRIVATE, r
            seen.add(r.prompt)
        assert seen == set(PRIVATE)
        asked = {prompt_of(c["body"]) for c in h.nodes.nodes["verifier:8801"].calls}
        assert asked == set(PRIVATE)  # every reference for a private prompt
        p.rng = random.Random(0)
        bad = await p.probe("liar", MODEL)
        assert bad.verdict == "fail" and bad.prompt in PRIVATE


async def test_an_invalid_prompt_file_stops_the_registry_before_it_starts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, canary_prompts=pool_file(tmp_path, []))
    with pytest.raises(ValueError, match=r"canary prompt file .*: no prompts"):
        create_registry_app(settings)


def test_registry_serve_says_a_bad_prompt_file_in_one_error_line(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app,
        ["registry", "serve", "--canary-prompts", str(tmp_path / "missing.json")],
        env={"COLUMNS": "300", "LLM_MESH_HOME": str(tmp_path / "home")},
    )
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
    assert (
        said.startswith("error: the canary prompt file") and "no such file (check the path)" in said
    ), said
    assert "Traceback" not in said
    mode = CliRunner().invoke(
        app,
        ["registry", "serve", "--canary-prompts-mode", "replace"],
        env={"COLUMNS": "300", "LLM_MESH_HOME": str(tmp_path / "home")},
    )
    assert mode.exit_code == 1 and "replace needs a prompt file" in mode.output, mode.output
