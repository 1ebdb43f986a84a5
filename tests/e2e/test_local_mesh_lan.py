"""``LocalMesh`` on this machine's LAN address (not loopback), with no flags: its registry is
started naming its own node's origin (``--allow-private-node``), which the registry accepts
in plain http too; found 2026-12-04: it refused its own node (403 ``plain_http_remote``) and
the mesh never started. Real processes, the sim engine (SIMULATED)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def _lan_address() -> str | None:
    """The IPv4 address this machine's outbound interface has (a UDP socket's connect sends
    nothing), or ``None`` when it has none but loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # TEST-NET-2: only the route is looked up
        except OSError:
            return None
        ip = str(s.getsockname()[0])
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_a_local_mesh_on_a_lan_address_starts_and_answers(tmp_path: Path) -> None:
    host = _lan_address()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    settings = Settings.from_env({"LLM_MESH_HOME": str(tmp_path), "LLM_MESH_HEARTBEAT_S": "1"})
    mesh = LocalMesh(
        settings, model="gemma-3-270m", engine="sim", host=host,
        registry_port=free_port(), node_port=free_port(), start_timeout_s=60,
    )  # fmt: skip
    mesh.start()
    try:
        r = httpx.post(
            f"{mesh.registry_url}/v1/chat/completions",
            json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 4},
            timeout=30,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
    finally:
        mesh.stop()
