"""``llm-mesh status`` (and ``python -m LLM_Mesh.distributed_models``) given several gateway
replicas names the one that answered. Found 2026-12-06 (newuser38, walking docs/deploy.md):
with R1 killed, ``status --registry R1,R2`` printed ``LLM Mesh at R1,R2: 1/1 nodes healthy``,
as if both had answered."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import LLM_Mesh

ROOT = Path(LLM_Mesh.__file__).resolve().parents[1]
ANSWERS = {"/mesh/models": {"models": []}, "/mesh/nodes": {"nodes": []}}


class _Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(ANSWERS.get(self.path.split("?")[0], {})).encode()
        self.send_response(200 if self.path.split("?")[0] in ANSWERS else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed: refused at once
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def live() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
