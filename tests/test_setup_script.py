"""./setup-node-operator.sh: dry run, a real (no-start) run, idempotence, shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "setup-node-operator.sh"
VENV = Path(sys.prefix)  # the venv running the tests is the one the script reuses


def run(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "home"), LLM_MESH_HOME=str(tmp_path / "mesh"))
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


def test_help(tmp_path: Path) -> None:
    out = run(tmp_path, "--help").stdout
    for flag in (
        "--yes",
        "--registry",
        "--models",
        "--dry-run",
        "--no-start",
        "--service",
        "--venv",
    ):
        assert flag in out


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    proc = run(tmp_path, "--dry-run", "--models", "gemma-3-270m", "--port", "8899")
    assert "would write" in proc.stdout and "port = 8899" in proc.stdout
    assert not (tmp_path / "mesh").exists()
    assert not any((tmp_path / "home").iterdir())


@pytest.mark.model
def test_yes_no_start_writes_config_and_is_idempotent(tmp_path: Path) -> None:
    proc = run(
        tmp_path,
        "--yes",
        "--no-start",
        "--registry",
        "http://10.0.0.5:8800/",
        "--public-url",
        "http://10.0.0.9:8801",
        "--region",
        "eu-west",
        "--port",
        "8801",
    )
    assert "wrote" in proc.stdout
    config = tmp_path / "mesh" / "node.toml"
    cfg = tomllib.loads(config.read_text())
    assert cfg["registry_url"] == "http://10.0.0.5:8800"
    assert cfg["public_url"] == "http://10.0.0.9:8801"
    assert cfg["host"] == "0.0.0.0" and cfg["port"] == 8801
    assert cfg["region"] == "eu-west" and cfg["engine"] == "llama-cpp"
    assert cfg["models"] == ["gemma-3-270m"]
    assert cfg["max_concurrency"] == 1 and cfg["max_queue"] == 8
    assert cfg["node_id"].startswith("node-")
    assert (tmp_path / "mesh" / "models" / "gemma-3-270m-q4_k_m.gguf").is_file()
    assert "node start --config" in proc.stdout
    mtime = config.stat().st_mtime_ns
    again = run(tmp_path, "--yes", "--no-start")
    assert "unchanged" in again.stdout
    assert config.stat().st_mtime_ns == mtime
    assert not [p for p in config.parent.iterdir() if p.name.startswith(".node.toml")]


def test_sim_engine_local_defaults(tmp_path: Path) -> None:
    run(tmp_path, "--yes", "--no-start", "--engine", "sim", "--models", "mistral-7b,code-llama-7b")
    cfg = tomllib.loads((tmp_path / "mesh" / "node.toml").read_text())
    assert cfg["host"] == "127.0.0.1" and cfg["public_url"] == "http://127.0.0.1:8801"
    assert cfg["registry_url"] == "http://127.0.0.1:8800"
    assert cfg["models"] == ["mistral-7b", "code-llama-7b"] and "region" not in cfg
    assert not (tmp_path / "mesh" / "models").exists()  # sim needs no files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port must be"),
        (["--gpu", "tpu"], "--gpu must be"),
        (["--registry", "ftp://x"], "not an http(s) URL"),
        (["--models", "a b"], "--models must be"),
        (["--bogus"], "unknown option"),
    ],
)
def test_bad_flags_say_how_to_fix(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run(tmp_path, "--yes", "--no-start", *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr and "how to fix" in proc.stderr
    assert not (tmp_path / "mesh" / "node.toml").exists()


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run(["shellcheck", str(SCRIPT)], check=True)
