"""A TLS mesh on loopback with the real model: a registry with a self-signed certificate
(trusted by the node and the client through a CA file), ``--require-tls``, a node serving
https with a ``node tls init`` certificate pinned by its fingerprint; a completion and a
stream over https on both hops; a plain-HTTP node refused; a node presenting another
certificate than the one registered (a MITM) gets nothing from the gateway."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, MessageKind, NodeSigner
from LLM_Mesh.node.tls import make_self_signed
from LLM_Mesh.secret_files import read_admin_key
from LLM_Mesh.tls import client_ssl_context
from tests.e2e.conftest import HAVE_MODEL, free_port
from tests.waiting import START_S, scaled

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing"),
]
MODEL = "gemma-3-270m"


def _operator_token(settings: Settings) -> str:
    async def go() -> str:
        from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
        from LLM_Mesh.registry.store import SqlStore

        store = SqlStore(settings.effective_database_url)
        await store.open()
        try:
            await ensure_admin_key(settings, store)
            return await add_operator(store, "tls-e2e", replace=True)
        finally:
            await store.close()

    return asyncio.run(go())


class _Mesh:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_files: list[BinaryIO] = []
        self.node_url = ""
        self.env = {
            **os.environ,
            "LLM_MESH_HOME": str(home),
            "LLM_MESH_HEARTBEAT_S": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "LLM_Mesh.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def spawn(self, name: str, *args: str) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self.log_files.append(log)
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "LLM_Mesh.cli", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for f in self.log_files:
            f.close()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.home.glob("*.log")))


class _Impostor:
    """An https server presenting its own certificate; counts the requests it got."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Mesh, str, Path, str]]:
    home = tmp_path_factory.mktemp("tls-mesh")
    mesh = _Mesh(home)
    reg_cert = make_self_signed(home / "registry-tls.crt", home / "registry-tls.key", ["127.0.0.1"])
    token = _operator_token(Settings.from_env({"LLM_MESH_HOME": str(home)}))
    mesh.env["LLM_MESH_OPERATOR_TOKEN"] = token
    out = mesh.cli("node", "tls", "init", "--host", "127.0.0.1")
    fp = re.search(r"sha256 fingerprint: ([0-9A-F:]{95})", out)
    assert fp is not None, out
    reg_port, node_port = free_port(), free_port()
    registry = f"https://127.0.0.1:{reg_port}"
    mesh.spawn(
        "registry", "registry", "serve", "--host", "127.0.0.1", "--port", str(reg_port),
        "--tls-cert", str(reg_cert.cert_path), "--tls-key", str(reg_cert.key_path),
        "--require-tls", "--allow-private-nodes",
    )  # fmt: skip
    mesh.spawn(
        "node", "node", "start", "--registry", registry, "--registry-ca", str(reg_cert.cert_path),
        "--model", MODEL, "--engine", "llama-cpp", "--host", "127.0.0.1", "--port", str(node_port),
        "--tls-cert", str(home / "node-tls.crt"), "--tls-key", str(home / "node-tls.key"),
        "--no-config",
    )  # fmt: skip
    try:
        node_url = mesh.node_url = f"https://127.0.0.1:{node_port}"
        deadline = time.monotonic() + scaled(START_S)  # the registry's start, the node's
        ready = False
        with httpx.Client(verify=client_ssl_context(reg_cert.cert_path), timeout=2) as c:
            while time.monotonic() < deadline and not ready:
                try:
                    # the admin's listing: public ones show no node address
                    admin = read_admin_key(Settings.from_env({"LLM_MESH_HOME": str(mesh.home)}))
                    auth = {"Authorization": f"Bearer {admin}"}
                    nodes = c.get(registry + "/mesh/nodes", headers=auth).json()["nodes"]
                    ready = any(n.get("url") == node_url and n["healthy"] for n in nodes)
                except httpx.HTTPError:
                    pass
                if not ready:
                    assert all(p.poll() is None for p in mesh.procs), mesh.logs()
                    time.sleep(0.2)
        assert ready, mesh.logs()
        yield mesh, registry, reg_cert.cert_path, fp.group(1)
    finally:
        mesh.stop()


def test_completion_and_stream_over_https(tls_mesh: tuple[_Mesh, str, Path, str]) -> None:
    mesh, registry, ca, _fp = tls_mesh
    with httpx.Client(verify=client_ssl_context(ca), timeout=60) as c:
        r = c.post(
            registry + "/v1/completions",
            json={"model": MODEL, "prompt": "def add(a, b):", "max_tokens": 16, "temperature": 0},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["text"].strip()
        assert body["mesh"]["simulated"] is False
        pieces: list[str] = []
        with c.stream(
            "POST",
            registry + "/v1/completions",
            json={"model": MODEL, "prompt": "def add(a, b):", "max_tokens": 16, "stream": True},
        ) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunk = json.loads(line[6:])
                    pieces += [ch.get("text") or "" for ch in chunk.get("choices") or []]
        assert "".join(pieces).strip()
    # the CLI verifies the registry with the CA file too (and refuses without it)
    assert MODEL in mesh.cli("models", "--registry", registry, "--registry-ca", str(ca))
    bare = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "models", "--registry", registry],
        env={k: v for k, v in mesh.env.items() if k != "LLM_MESH_REGISTRY_CA"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bare.returncode != 0
    # the operator's loopback tools reach the https node (they trust its own certificate)
    assert "gemma" in mesh.cli("node", "info", "--node-url", mesh.node_url)


def _register(registry: str, ca: Path, token: str, reg: dict[str, object]) -> httpx.Response:
    signer = NodeSigner(Ed25519PrivateKey.generate(), time.time)
    body = json.dumps({"node_id": signer.node_id, **reg}).encode()
    headers = signer.headers(MessageKind.REGISTER, body)
    headers[HDR_OPERATOR_TOKEN] = token
    headers["Content-Type"] = "application/json"
    return httpx.post(
        registry + "/mesh/nodes", content=body, headers=headers, timeout=10,
        verify=client_ssl_context(ca),
    )  # fmt: skip


def test_plain_http_node_refused(tls_mesh: tuple[_Mesh, str, Path, str]) -> None:
    mesh, registry, ca, _fp = tls_mesh
    r = _register(
        registry, ca, mesh.env["LLM_MESH_OPERATOR_TOKEN"],
        {"url": f"http://127.0.0.1:{free_port()}", "models": [{"id": MODEL}]},
    )  # fmt: skip
    assert r.status_code == 403, r.text
    assert r.json()["error"]["reason"] == "tls_required"


def test_node_with_another_certificate_gets_nothing(
    tls_mesh: tuple[_Mesh, str, Path, str], tmp_path: Path
) -> None:
    """The registration pins the real node's fingerprint; the server at its URL presents
    another certificate (a MITM): the gateway refuses the handshake, sends no request."""
    mesh, registry, ca, real_fp = tls_mesh
    other = make_self_signed(tmp_path / "mitm.crt", tmp_path / "mitm.key", ["127.0.0.1"])
    impostor = _Impostor(other.cert_path, other.key_path)
    try:
        reg = {
            "url": f"https://127.0.0.1:{impostor.port}",
            "models": [{"id": MODEL}],
            "tls_fingerprint": real_fp,
        }
        r = _register(registry, ca, mesh.env["LLM_MESH_OPERATOR_TOKEN"], reg)
        assert r.status_code == 200, r.text
        node_id = r.json()["node_id"]
        with httpx.Client(verify=client_ssl_context(ca), timeout=30) as c:
            r = c.post(
                registry + "/v1/completions",
                json={"model": MODEL, "prompt": "x", "max_tokens": 2, "allow_nodes": [node_id]},
            )
            assert r.status_code >= 500, r.text
            admin = read_admin_key(Settings.from_env({"LLM_MESH_HOME": str(mesh.home)}))
            check = c.post(
                registry + "/mesh/health-check", headers={"Authorization": f"Bearer {admin}"}
            )
            assert check.status_code == 200, check.text
            mine = [x for x in check.json()["results"] if x["url"].endswith(f":{impostor.port}")]
            assert mine and mine[0]["ok"] is False
            assert "certificate" in (mine[0]["error"] or "").lower()
        assert impostor.requests == 0
    finally:
        impostor.close()
