"""The seed's migration guide, run as it is written, against a mesh whose node hosts Code Llama.

Each snippet below is the guide's text, unchanged (the first one needs the import its
excerpt leaves out). The guide's Python uses top-level ``await``, which runs in Python's
asyncio REPL (``python -m asyncio``), so it is fed to one; its shell blocks run in bash in
a copy of the guide's "before" checkout. The node runs the ``sim`` engine (no Code Llama
file here): every answer says ``simulated``. The same API against the real gemma model:
``tests/e2e/test_real_model.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.conftest import start_mesh

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# "1. Distributed Model Registry" (with the import the excerpt leaves out)
REQUEST_ROUTING = """from LLM_Mesh.distributed_models import get_model_response
# Example: Request routing
result = await get_model_response(
    model_name="code-llama-7b",
    prompt="def fibonacci(n):",
    task_type="python"
)
# Automatically routes to best available node hosting Code Llama
print("ROUTED", result.model, result.node_id, result.simulated)
"""

# "Network Status Monitoring"
NETWORK_STATUS = """from LLM_Mesh.distributed_models import model_registry

# Check available models
print(model_registry.get_model_info())

# Check individual model status
print(model_registry.get_model_info("code-llama-7b"))

# Perform health check
await model_registry.health_check_all_hosts()
"""

# "Technical Implementation", step 1
HANDLE_TASK = """from LLM_Mesh.mesh_manager import mesh_manager
result = mesh_manager.handle_task("debug", {"code": "...", "error": "..."})
print("TASK", result.model, result.node_id, result.simulated)
"""

# "Migration Commands": "Quick Clean-Up" and "Verify Migration"
QUICK_CLEAN_UP = """# Remove local model files
find . -name "*.gguf" -delete
find . -name "*.bin" -delete
rm -rf LLM_Mesh/models/

# Test distributed system
python -c "
import asyncio
from LLM_Mesh.distributed_models import initialize_distributed_models
asyncio.run(initialize_distributed_models())
"
"""
VERIFY_MIGRATION = """# Check that no large model files remain
du -sh . | grep -E "[0-9]+G"  # Should show minimal size

# Test that distributed models work
python -m LLM_Mesh.distributed_models
"""

BEFORE = {  # the guide's "Before" tree, with each format's first bytes
    "LLM_Mesh/models/administrative/deepseek-llm-67b-chat.Q2_K.gguf": b"GGUF\x03\x00\x00\x00",
    "LLM_Mesh/models/administrative/llama-2-70b-chat.ggmlv3.q2_K.bin": b"tjgg\x03\x00\x00\x00",
    "LLM_Mesh/models/administrative/qwen1.5-72b-chat-q2_k.gguf": b"GGUF\x03\x00\x00\x00",
    "requirements.txt": b"llm-mesh\n",
}


@pytest.fixture(scope="module")
def code_llama_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mesh = start_mesh(
        tmp_path_factory.mktemp("seed-home"),
        model="code-llama-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        yield mesh
    finally:
        mesh.stop()


def env_for(mesh: LocalMesh) -> dict[str, str]:
    """The user's shell after `llm-mesh up`: its `python` is the venv's, its home the mesh's
    (the health check's admin key), the registry the mesh's."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "LLM_MESH_REGISTRY_URL": mesh.registry_url,
        "LLM_MESH_HOME": str(mesh.settings.home),
    }


def readme_repl() -> list[str]:
    """The REPL README.md ("The seed's Python API") tells the guide's readers to paste into."""
    found = re.search(r"`python (-m asyncio)`", (ROOT / "README.md").read_text())
    assert found, "README.md does not say where the guide's top-level `await` runs"
    return [sys.executable, *found.group(1).split()]


def asyncio_repl(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        readme_repl(),
        input=code,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the REPL exits 0 whatever its lines raised: a traceback is the failure
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout + out.stderr
    return out


def test_request_routing_reaches_the_code_llama_node(code_llama_mesh: LocalMesh) -> None:
    out = asyncio_repl(REQUEST_ROUTING, env_for(code_llama_mesh))
    (line,) = [x for x in out.stdout.splitlines() if "ROUTED " in x]  # after the REPL's prompts
    model, node_id, simulated = line.split("ROUTED ", 1)[1].split()
    assert model == "code-llama-7b" and node_id.startswith("node-") and simulated == "True"


def test_network_status_monitoring(code_llama_mesh: LocalMesh) -> None:
    out = asyncio_repl(NETWORK_STATUS, env_for(code_llama_mesh)).stdout
    assert "'models_available': ['code-llama-7b']" in out
    assert "'id': 'code-llama-7b'" in out and "'hosts': [{'node_id': 'node-" in out
    assert "'ok': True" in out  # the health check's answer, shown by the REPL


def test_handle_task_debug(code_llama_mesh: LocalMesh) -> None:
    out = subprocess.run(
        [sys.executable, "-c", HANDLE_TASK],
        env=env_for(code_llama_mesh),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("TASK")]
    assert line.split()[1] == "code-llama-7b" and line.split()[3] == "True"


def test_migration_commands_clean_the_checkout_and_find_the_network(
    code_llama_mesh: LocalMesh, tmp_path: Path
) -> None:
    checkout = tmp_path / "Free-S_Code"
    for name, head in BEFORE.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes(head + b"\0" * 1024)
    (checkout / "LLM_Mesh/models/worker").mkdir()
    env = env_for(code_llama_mesh)

    def bash(block: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", block], cwd=checkout, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    clean = bash(QUICK_CLEAN_UP)
    assert clean.returncode == 0 and "Traceback" not in clean.stderr, clean.stderr
    assert sorted(p.name for p in checkout.rglob("*")) == ["LLM_Mesh", "requirements.txt"]
    verify = bash(VERIFY_MIGRATION)
    assert verify.returncode == 0, verify.stderr
    first = verify.stdout.splitlines()[0]
    assert "1/1 nodes healthy, models up: code-llama-7b" in first, verify.stdout
    assert "simulated" in verify.stdout
