"""``llm-mesh status`` (and ``python -m LLM_Mesh.distributed_models``) given several gateway
replicas names the one that answered. Found 2026-12-06 (newuser38, walking docs/deploy.md):
with R1 killed, ``status --registry R1,R2`` printed ``LLM Mesh at R1,R2: 1/1 nodes healthy``,
as if both had answered."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import LLM_Mesh
from tests.cli.registry_404 import serve_http

ROOT = Path(LLM_Mesh.__file__).resolve().parents[1]
ANSWERS = {"/mesh/models": {"models": []}, "/mesh/nodes": {"nodes": []}}


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed: refused at once
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def live() -> Iterator[str]:
    with serve_http(ANSWERS) as (url, _, _):
        yield url


def _run(args: list[str], home: Path, urls: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLM_MESH_HOME": str(home),
           "LLM_MESH_REGISTRY_URL": urls, "COLUMNS": "300"}  # fmt: skip
    env.pop("LLM_MESH_API_KEY", None)
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


@pytest.mark.parametrize(
    "args", [["-m", "LLM_Mesh.cli", "status"], ["-m", "LLM_Mesh.distributed_models"]]
)
def test_status_names_the_replica_that_answered(live: str, tmp_path: Path, args: list[str]) -> None:
    dead = _dead_url()
    out = _run(args, tmp_path, f"{dead},{live}")
    assert f"LLM Mesh at {live} (the replica that answered, of {dead},{live}):" in out, out


def test_one_gateway_is_named_as_before(live: str, tmp_path: Path) -> None:
    out = _run(["-m", "LLM_Mesh.cli", "status"], tmp_path, live)
    assert f"LLM Mesh at {live}: 0/0 nodes healthy" in out, out
