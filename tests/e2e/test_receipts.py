"""Receipts with real processes on loopback: a registry+gateway and a SIMULATED node (the
``sim`` engine; its answers say ``simulated: true``). ``llm-mesh receipt verify -`` (a real
subprocess, keys fetched from the registry's ``GET /v1/ledger/keys``) passes on a real
answer and fails when one byte of it changes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.conftest import start_mesh

pytestmark = pytest.mark.e2e

MODEL = "mistral-7b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story"}],
        "max_tokens": 24}  # fmt: skip


@pytest.fixture(scope="module")
def sim_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mesh = start_mesh(
        tmp_path_factory.mktemp("receipts-home"), model=MODEL, engine="sim",
        node_args=["--sim-ttft-s", "0", "--sim-tokens-per-s", "2000"], allow_private_nodes=True,
    )  # fmt: skip
    try:
        yield mesh
    finally:
        mesh.stop()


def cli_verify(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``llm-mesh receipt verify - ARGS`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "receipt", "verify", "-", *args],
        input=stdin, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one_byte_changed(text: str) -> str:
    """``text`` with one letter of the answer's content changed."""
    m = re.search(r'"content":\s*"[^"]*?([A-Za-z])', text)
    assert m is not None, text[:300]
    at = m.start(1)
    return text[:at] + ("x" if text[at] != "x" else "y") + text[at + 1 :]


def test_a_real_answer_verifies_and_one_changed_byte_fails(sim_mesh: LocalMesh) -> None:
    url = sim_mesh.registry_url
    r = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["mesh"]["simulated"] is True  # the sim engine: labelled simulated
    ok = cli_verify(r.text, "--registry", url, "--require-signed")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert r.json()["mesh"]["receipt"]["receipt_hash"] in ok.stdout
    bad = cli_verify(one_byte_changed(r.text), "--registry", url)
    assert bad.returncode == 1 and "output_sha256" in bad.stderr, bad.stdout + bad.stderr
    # the header, against keys saved from the registry (offline)
    keys = httpx.get(url + "/v1/ledger/keys", timeout=10).text
    key = json.loads(keys)["data"][0]["public_key"]
    header = r.headers["x-mesh-receipt"]
    assert cli_verify(header, "--key", key).returncode == 0
    flipped = header[:20] + ("A" if header[20] != "A" else "B") + header[21:]
    assert cli_verify(flipped, "--key", key).returncode == 1


def test_a_real_stream_verifies_and_one_changed_byte_fails(sim_mesh: LocalMesh) -> None:
    url = sim_mesh.registry_url
    with httpx.stream("POST", url + "/v1/chat/completions", json={**BODY, "stream": True},
                      timeout=30) as r:  # fmt: skip
        assert r.status_code == 200
        sse = r.read().decode()
    assert '"receipt"' in sse and sse.rstrip().endswith("data: [DONE]")
    ok = cli_verify(sse, "--registry", url, "--require-signed")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = cli_verify(one_byte_changed(sse), "--registry", url)
    assert bad.returncode == 1 and "output_sha256" in bad.stderr, bad.stdout + bad.stderr


def test_cli_offline_with_a_saved_keys_file(sim_mesh: LocalMesh, tmp_path: Path) -> None:
    url = sim_mesh.registry_url
    r = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
    keys = tmp_path / "keys.json"
    keys.write_text(httpx.get(url + "/v1/ledger/keys", timeout=10).text)
    ok = cli_verify(r.text, "--keys", str(keys))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = r.json()
    data["usage"]["completion_tokens"] += 1  # the answer's usage no longer matches
    bad = cli_verify(json.dumps(data), "--keys", str(keys))
    assert bad.returncode == 1 and "usage" in bad.stderr
