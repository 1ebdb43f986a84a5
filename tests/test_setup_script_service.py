"""./setup-node-operator.sh --service: the systemd user unit (once, with the registry's CA),
and its dry run (with and without systemctl)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from LLM_Mesh.node.tls import make_self_signed
from tests.setup_script import SCRIPT, VENV, bare_machine_path, run


def test_service_installs_a_systemd_user_unit_once(tmp_path: Path) -> None:
    """--service writes the unit and enables it; systemctl is a recording stand-in here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.calls"
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(
        HOME=str(tmp_path / "home"),
        LLM_MESH_HOME=str(tmp_path / "mesh"),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    (tmp_path / "home").mkdir()
    cmd = [
        "bash", str(SCRIPT), "--venv", str(VENV), "--skip-install", "--yes", "--service",
        "--engine", "sim", "--models", "mistral-7b", "--registry", "http://127.0.0.1:8800",
    ]  # fmt: skip
    first = subprocess.run(
        cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    assert first.returncode == 0, first.stdout + first.stderr
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "llm-mesh-node.service"
    text = unit.read_text()
    assert f"Environment=LLM_MESH_HOME={tmp_path / 'mesh'}" in text
    assert (
        f"ExecStart={VENV}/bin/llm-mesh node start --home {tmp_path / 'mesh'} "
        f"--config {tmp_path / 'mesh' / 'node.toml'}" in text
    )
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    # an operator token the registry does not know: `node start` exits 78, and systemd does
    # not start it again every 10 s (found 2026-12-05, polish32)
    assert "RestartPreventExitStatus=78" in text
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now llm-mesh-node.service",
    ]
    second = subprocess.run(
        cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "unchanged" in second.stdout
    assert unit.read_text() == text


def test_service_gets_the_registry_ca_it_runs_with(tmp_path: Path) -> None:
    """Found 2026-12-03: docs/deploy.md says a service node of a private-CA registry needs
    LLM_MESH_REGISTRY_CA "in its environment" (node.toml has no key for it), but the unit
    --service writes set only LLM_MESH_HOME (and a re-run rewrote a unit edited by hand)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\n")
    (bin_dir / "systemctl").chmod(0o755)
    # a real certificate: every command reads the CA file it is given (ux34: a bad one is
    # one error line at once, not a traceback mid-request)
    make_self_signed(tmp_path / "ca.crt", tmp_path / "ca.key", ["127.0.0.1"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(
        HOME=str(tmp_path / "home"),
        LLM_MESH_HOME=str(tmp_path / "mesh"),
        LLM_MESH_REGISTRY_CA="ca.crt",  # relative: the unit gets it absolute
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    (tmp_path / "home").mkdir()
    cmd = [
        "bash", str(SCRIPT), "--venv", str(VENV), "--skip-install", "--yes", "--service",
        "--engine", "sim", "--models", "mistral-7b", "--registry", "https://127.0.0.1:8800",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "llm-mesh-node.service"
    assert f"Environment=LLM_MESH_REGISTRY_CA={tmp_path / 'ca.crt'}\n" in unit.read_text()
    env["LLM_MESH_REGISTRY_CA"] = str(tmp_path / "missing.crt")
    bad = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "missing.crt is not a file" in bad.stdout + bad.stderr


def test_a_dry_run_of_service_says_would_and_the_models_used_are_named(tmp_path: Path) -> None:
    """Found 2026-12-05 (newuser31): ``--dry-run --service`` ended "node running as a
    service" (nothing ran), and a run whose node.toml (or --models) named code-llama-7b said
    only "proposed: gemma-3-270m": which models the node would serve was said nowhere."""
    sim = ("--yes", "--engine", "sim", "--registry", "http://127.0.0.1:8800")
    out = run(tmp_path, *sim, "--models", "code-llama-7b", "--no-start").stdout
    assert "models: code-llama-7b (from --models; proposed: " in out, out
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "systemctl").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    out = run(tmp_path, *sim, "--service", "--dry-run", PATH=path).stdout
    assert "models: code-llama-7b (from node.toml; proposed: " in out, out
    assert "node running as a service" not in out, out
    assert "would run the node as a service; logs: journalctl --user -u llm-mesh-node -f" in out


def test_a_dry_run_of_service_without_systemctl_prints_the_whole_plan(tmp_path: Path) -> None:
    """Found 2026-12-05 (``polish31``): ``--dry-run --service`` on a machine without
    systemctl ended ``error: systemctl not found`` (exit 1) before the service's steps: a
    dry run must print the whole plan, saying where a real run would stop, and exit 0."""
    bin_dir = bare_machine_path(tmp_path)  # no systemctl on it
    assert not (bin_dir / "systemctl").exists()
    home, mesh = tmp_path / "home", tmp_path / "mesh"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_MESH_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(HOME=str(home), LLM_MESH_HOME=str(mesh), PATH=str(bin_dir))
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--yes", "--engine", "sim", "--models",
         "gemma-3-270m", "--service"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    unit = home / ".config" / "systemd" / "user" / "llm-mesh-node.service"
    steps = [
        f"would write {unit}",
        "a real run would stop here: systemctl not found; fix: start the node by hand: "
        f"{mesh}/venv/bin/llm-mesh node start",
        "would run: systemctl --user daemon-reload",
        "would run: systemctl --user enable --now llm-mesh-node.service",
        "would run the node as a service; logs: journalctl --user -u llm-mesh-node -f",
    ]
    at = 0
    for step in steps:
        found = out.find(step, at)
        assert found >= 0, f"{step!r} missing (or out of order) in:\n{out}\n{proc.stderr}"
        at = found + len(step)
    assert "error:" not in proc.stderr, proc.stderr
    assert not mesh.exists() and not any(home.iterdir())  # nothing written
