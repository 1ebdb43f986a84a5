"""./setup-node-operator.sh in a home whose node key a running node holds (`llm-mesh up`'s).

Found 2026-12-05 (a new user, `llm-mesh up` running in the same ``$LLM_MESH_HOME``): the
script said only that port 8801 was taken ("run again with a free port: --port 8802"); run
so, it wrote its node.toml into ``up``'s home (after which ``llm-mesh node info`` there asks
port 8802, not up's node) and only then the node stopped: the key was held. It now says so
before it writes anything, naming ``LLM_MESH_HOME=DIR``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.setup_script import SCRIPT, run

SIM = ("--yes", "--engine", "sim", "--models", "mistral-7b", "--port", "8899")


@contextmanager
def key_held(home: Path) -> Iterator[None]:
    """Hold ``home``'s node.key.lock as a running node does (LLM_Mesh.node.keys.key_in_use)."""
    home.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(home / "node.key.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def test_a_home_whose_key_a_running_node_holds_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    home = tmp_path / "mesh"
    with key_held(home):
        proc = run(tmp_path, *SIM, check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "setup-node-operator: error: a node is running with" in said, said
    assert "LLM_MESH_HOME=DIR" in said.split("error:", 1)[1], said
    assert not (home / "node.toml").exists() and not (home / "node.key").exists()
    assert "starting the node" not in said


def test_a_dry_run_or_no_start_says_so_and_a_free_home_says_nothing(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    with key_held(home):
        dry = run(tmp_path, *SIM, "--dry-run").stderr + run(tmp_path, *SIM, "--dry-run").stdout
        assert "a real run would stop here: a node is running with" in dry, dry
        setup = run(tmp_path, *SIM, "--no-start")
        assert "note: a node is running with" in setup.stdout, setup.stdout
        assert (home / "node.toml").exists()  # set up only: the operator may mean this node
    free = run(tmp_path, *SIM, "--no-start")
    assert "a node is running with" not in free.stdout + free.stderr


def test_the_refusal_comes_before_the_venv_is_made_in_the_home(tmp_path: Path) -> None:
    """Found 2026-12-06 (a new user, `llm-mesh up` running in the default home): the script
    first made its venv in ``$LLM_MESH_HOME/venv`` (and, without ``--skip-install``, installed
    llm-mesh and llama-cpp-python there: minutes) and asked its questions, and only then
    refused the home whose key up's node holds."""
    home = tmp_path / "mesh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "home"), LLM_MESH_HOME=str(home))
    with key_held(home):
        proc = subprocess.run(
            ["bash", str(SCRIPT), "--skip-install", *SIM],  # no --venv: the home's
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
            check=False,
        )  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "setup-node-operator: error: a node is running with" in said, said
    assert not (home / "venv").exists(), said
    assert "venv:" not in said and "hardware:" not in said, said
