"""Failure behaviour with real processes: unreachable registry, dead node, registry restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, start_mesh

pytestmark = pytest.mark.e2e


def test_status_with_no_registry_says_so_and_fails() -> None:
    env = {**os.environ, "LLM_MESH_REGISTRY_URL": f"http://127.0.0.1:{free_port()}"}
    out = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.distributed_models"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "unreachable" in (out.stdout + out.stderr).lower()


def _wait(pred, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_dead_node_gives_a_clear_error_and_the_gateway_stays_up(tmp_path: Path) -> None:
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        ok = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert ok.status_code == 200 and ok.json()["mesh"]["simulated"] is True
        node = mesh._children[-1].proc
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)
        r = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert r.status_code in (502, 503, 504), r.text
        assert r.json()["error"]["message"]
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        # the node leaves routing after missed heartbeats (1 s × 3 here): then a 503 at once
        assert _wait(
            lambda: (
                httpx.post(
                    url + "/v1/completions", json={"model": "mistral-7b", "prompt": "hi"}, timeout=5
                ).status_code
                == 503
            )
        )
    finally:
        mesh.stop()


def test_registry_restart_nodes_come_back_nothing_lost(tmp_path: Path) -> None:
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        for _ in range(3):
            r = httpx.post(
                url + "/v1/completions",
                json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
                timeout=10,
            )
            assert r.status_code == 200
        before = httpx.get(url + "/mesh/nodes", timeout=5).json()["nodes"]
        assert before and before[0]["requests"] >= 0
        time.sleep(1.0)  # let the request log flush
        reg = mesh._children[0]
        reg.proc.send_signal(signal.SIGTERM)
        reg.proc.wait(15)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "LLM_Mesh.cli",
                "registry",
                "serve",
                "--port",
                str(mesh.registry_port),
            ],
            env=mesh._env(),
            stdout=reg.log,
            stderr=subprocess.STDOUT,
        )
        try:

            def node_back() -> bool:
                try:
                    nodes = httpx.get(url + "/mesh/nodes", timeout=2).json()["nodes"]
                except httpx.HTTPError:
                    return False
                return any(n["healthy"] for n in nodes)

            assert _wait(node_back, 30), "the node did not come back after a registry restart"
            nodes = httpx.get(url + "/mesh/nodes", timeout=5).json()["nodes"]
            assert nodes[0]["requests"] >= 3, nodes  # counters survived the restart
            r = httpx.post(
                url + "/v1/completions",
                json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
                timeout=10,
            )
            assert r.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    finally:
        mesh.stop()
