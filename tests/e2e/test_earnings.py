"""Rewards and earnings with real processes: ``llm-mesh up``'s registry and sim node earn
uptime rewards, ``llm-mesh earnings`` and ``llm-mesh node info`` show them, the ledger
still verifies, and ``node info`` says so when the registry is gone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.local_mesh import LocalMesh
from LLM_Mesh.secret_files import read_admin_key
from tests.e2e.conftest import start_mesh

pytestmark = pytest.mark.e2e


def _wait(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _cli(mesh: LocalMesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", *args],
        env={**mesh._env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_uptime_rewards_show_in_earnings_and_node_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two-second periods, 1000 micro-NetworkTokens per millisecond of uptime
    monkeypatch.setenv("LLM_MESH_REWARD_PERIOD_S", "2")
    monkeypatch.setenv("LLM_MESH_REWARD_RATE", "3600000000")
    monkeypatch.setenv("LLM_MESH_REWARD_SIMULATED", "1")  # a sim node's uptime counts here
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url

        def rewarded() -> bool:
            entries = httpx.get(url + "/v1/ledger", timeout=5).json()["data"]
            return any(e["kind"] == "reward" for e in entries)

        assert _wait(rewarded), "no reward entry within 30 s"

        # the registry's active check sends a signed challenge: the real node answers it
        # with its node key, and passes (an unsigned answer would take it out of routing)
        admin = read_admin_key(mesh.settings)
        check = httpx.post(
            url + "/mesh/health-check", headers={"Authorization": f"Bearer {admin}"}, timeout=30
        )
        assert check.status_code == 200, check.text
        results = check.json()["results"]
        assert results and all(r["ok"] for r in results), results
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'llm_mesh_gateway_health_checks_total{result="ok"}' in metrics
        assert 'result="unproven"' not in metrics

        # the operator (up's `local`; its token is in the environment up gives its node)
        out = _cli(mesh, "earnings", "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["operator"] == "local" and report["totals"]["rewards"] > 0
        (node,) = report["by_node"]
        assert node["rewards"] == report["totals"]["rewards"] and node["healthy_s"] >= 0
        assert report["balance"] >= report["totals"]["rewards"]

        # the node's own view: no token on the command line, the node asks its registry
        info = _cli(mesh, "node", "info", "--node-url", mesh.node_url)
        assert info.returncode == 0, info.stdout + info.stderr
        assert "Earnings" in info.stdout and "operator local" in info.stdout

        # the books still check out, rewards and all
        verify = _cli(mesh, "ledger", "verify", "--registry", url)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # the registry goes away: node info says so, and shows no zeros for earnings
        reg = mesh._children[0]
        reg.proc.send_signal(signal.SIGTERM)
        reg.proc.wait(15)
        info = _cli(mesh, "node", "info", "--node-url", mesh.node_url)
        assert info.returncode == 0, info.stdout + info.stderr
        assert "earnings unavailable" in info.stdout and "unreachable" in info.stdout
        assert "µNT" not in info.stdout
    finally:
        mesh.stop()
