"""./setup-node-operator.sh, the whole join: the script starts a node that serves through a
real registry."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from tests.setup_script import SCRIPT, VENV
from tests.waiting import START_S, scaled


def _free_port() -> int:
    return free_port()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` for ``timeout`` s scaled (tests/waiting.py: the deadline only bounds
    a failure; unscaled until flakes39, the registry's start given 60 s where a loaded box
    took 98.5 s)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError("process did not stop on SIGTERM") from None
    return proc.returncode


@pytest.mark.e2e
@pytest.mark.model
def test_script_joins_a_registry_and_serves_through_the_gateway(tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    reg_port, node_port = _free_port(), _free_port()
    registry = f"http://127.0.0.1:{reg_port}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    base["LLM_MESH_HEARTBEAT_S"] = "1"
    (tmp_path / "home").mkdir()
    reg_log = (tmp_path / "registry.log").open("wb")
    node_log = (tmp_path / "node.log").open("wb")
    reg = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "LLM_Mesh.cli",
            "registry",
            "serve",
            "--port",
            str(reg_port),
            "--allow-private-nodes",
        ],  # the node is on 127.0.0.1
        env={**base, "LLM_MESH_HOME": str(tmp_path / "registry-home")},
        stdout=reg_log,
        stderr=subprocess.STDOUT,
    )
    node: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: _get(registry + "/healthz") == 200, START_S, "the registry")
        token = _operator_token(tmp_path / "registry-home", base)
        base["LLM_MESH_OPERATOR_TOKEN"] = token  # what the registry's admin hands the operator
        node = subprocess.Popen(
            ["bash", str(SCRIPT), "--yes", "--skip-install", "--venv", str(VENV),
             "--models", "gemma-3-270m", "--registry", registry, "--port", str(node_port)],
            env={**base, "HOME": str(tmp_path / "home"), "LLM_MESH_HOME": str(tmp_path / "mesh")},
            stdin=subprocess.DEVNULL,
            stdout=node_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        body = {"model": "gemma-3-270m", "prompt": "def add(a, b):", "max_tokens": 8}
        answers: list[httpx.Response] = []

        def answered() -> bool:
            if node is not None and node.poll() is not None:
                raise AssertionError((tmp_path / "node.log").read_text())
            try:
                r = httpx.post(registry + "/v1/completions", json=body, timeout=60)
            except httpx.HTTPError:
                return False
            answers.append(r)
            return r.status_code == 200

        _wait_for(answered, 240, "an answer through the gateway")
        answer = answers[-1].json()
        assert answer["choices"][0]["text"] and answer["usage"]["completion_tokens"] > 0
        assert answer["mesh"]["node_id"].startswith("node-")
        assert answer["mesh"]["simulated"] is False
        # SIGTERM: a clean shutdown (uvicorn re-raises the signal once done), the node deregisters
        assert _stop(node) in (0, -signal.SIGTERM)
        node_log.flush()
        assert "Application shutdown complete" in (tmp_path / "node.log").read_text()
        nodes = httpx.get(registry + "/mesh/nodes", timeout=10).json()["nodes"]
        assert [(n["state"], n["healthy"]) for n in nodes] == [("offline", False)], (
            tmp_path / "node.log"
        ).read_text()[-3000:]  # did its goodbye fail?
    finally:
        if node is not None:
            _stop(node)
        _stop(reg)
        reg_log.close()
        node_log.close()


def _operator_token(registry_home: Path, env: dict[str, str]) -> str:
    """``llm-mesh registry operators add`` on the registry's store; the token it prints once."""
    out = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "registry", "operators", "add", "tester"],
        env={**env, "LLM_MESH_HOME": str(registry_home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return next(line.strip() for line in out.splitlines() if line.startswith("lmo_"))


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
