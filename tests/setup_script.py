"""Helpers for the tests of ./setup-node-operator.sh (``test_setup_script*.py``): the script,
the venv it reuses, a run of it, and a bare machine's PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "setup-node-operator.sh"
VENV = Path(sys.prefix)  # the venv running the tests is the one the script reuses


def run(
    tmp_path: Path, *args: str, check: bool = True, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "home"), LLM_MESH_HOME=str(tmp_path / "mesh"), **extra_env)
    (tmp_path / "home").mkdir(exist_ok=True)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--venv", str(VENV), "--skip-install", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# What the script runs on its way through a dry run, and nothing more: no cmake, no compiler.
BASIC_TOOLS = ("bash", "sed", "head", "grep", "dirname", "df", "awk", "cat", "env", "mkdir")


def bare_machine_path(tmp_path: Path) -> Path:
    """A folder to be all of ``PATH``: a ``python3`` with the standard library only (as a
    fresh machine's system Python) and the basic tools; no cmake, no C compiler."""
    bare = tmp_path / "bare-python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120
    )
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{bare / "bin" / "python3"}" "$@"\n')
    python3.chmod(0o755)
    probe = subprocess.run(
        [str(python3), "-c", "import pydantic"], capture_output=True, check=False, timeout=60
    )
    assert probe.returncode != 0, "the bare python must lack the package's dependencies"
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the script"
        (bin_dir / tool).symlink_to(found)
    return bin_dir
