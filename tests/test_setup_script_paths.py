"""./setup-node-operator.sh: the commands it prints, and the unit it writes, work from anywhere.

Found 2026-12-06 (newuser33, README's "More nodes on the machine that runs `llm-mesh up`"):
``LLM_MESH_HOME=~/.llm-mesh-node2 ./setup-node-operator.sh --no-start`` ended
``start the node with: .../llm-mesh node start --config ~/.llm-mesh-node2/node.toml``. Run
so in another terminal (no ``LLM_MESH_HOME`` there), that node took ``~/.llm-mesh/node.key``
(a new key, another node id, the node.toml's ``node_id`` "ignored"; with ``up`` running there,
refused: its key is held) and kept its pin and served log in ``~/.llm-mesh``. And with a
relative ``--venv .venv`` (README: "``--venv DIR`` reuses a venv you already have") the
command was ``.venv/bin/llm-mesh ...``, and the ``--service`` unit's ``ExecStart=`` too, which
systemd refuses (not an absolute path).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from LLM_Mesh.node.tls import make_self_signed
from tests.ports import free_port
from tests.setup_script import SCRIPT, VENV, run
from tests.waiting import START_S, scaled

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SIM = ("--yes", "--engine", "sim", "--models", "mistral-7b")


def printed_start(stdout: str) -> list[str]:
    """The command a ``--no-start`` run says to start the node with."""
    marker = "set up; start the node with: "
    (line,) = [x for x in stdout.splitlines() if marker in x]
    return shlex.split(line.split(marker, 1)[1])


def test_the_printed_start_command_runs_the_node_of_that_home_from_a_fresh_shell(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = run(
        tmp_path, *SIM, "--port", str(port), "--registry", "http://127.0.0.1:9", "--no-start"
    )
    command = printed_start(proc.stdout)
    node_id = tomllib.loads((tmp_path / "mesh" / "node.toml").read_text())["node_id"]
    # another terminal: no LLM_MESH_HOME, another folder; its default home is someone else's
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "other-home"))
    (tmp_path / "elsewhere").mkdir()
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        node = subprocess.Popen(
            command, env=env, cwd=tmp_path / "elsewhere", stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + scaled(START_S)
            while "SIMULATED engine" not in log.read_text() and node.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(log.read_text())
                time.sleep(0.2)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(30)
    said = log.read_text()
    assert f"node {node_id} serves mistral-7b" in said, said
    assert "is ignored" not in said, said
    assert not (tmp_path / "other-home" / ".llm-mesh").exists()


def test_a_relative_venv_and_home_give_absolute_commands_and_unit(tmp_path: Path) -> None:
    venv = os.path.relpath(VENV, tmp_path)
    assert not os.path.isabs(venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "systemctl").chmod(0o755)
    env.update(
        HOME=str(tmp_path / "home"),
        LLM_MESH_HOME="mesh",  # relative, as `LLM_MESH_HOME=mesh ./setup-node-operator.sh`
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", str(SCRIPT), "--venv", venv, "--skip-install", *SIM, *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    command = printed_start(script("--no-start").stdout)
    assert command[0] == str(VENV / "bin" / "llm-mesh"), command
    assert command[command.index("--home") + 1] == str(tmp_path / "mesh"), command
    assert command[command.index("--config") + 1] == str(tmp_path / "mesh" / "node.toml")
    script("--service")
    unit = (tmp_path / "home" / ".config/systemd/user/llm-mesh-node.service").read_text()
    assert f"Environment=LLM_MESH_HOME={tmp_path / 'mesh'}\n" in unit, unit
    assert f"ExecStart={VENV}/bin/llm-mesh node start --home {tmp_path / 'mesh'} " in unit, unit


def test_the_printed_start_command_names_the_registry_ca_it_ran_with(tmp_path: Path) -> None:
    """Found 2026-12-06 (newuser35b, an operator's walk against an https registry with a
    private CA, docs/deploy.md's openssl steps): ``LLM_MESH_REGISTRY_CA=ca.crt
    ./setup-node-operator.sh --no-start`` printed ``node start --home H --config C``; run
    from another shell (no ``LLM_MESH_REGISTRY_CA`` there: node.toml has no key for it) the
    node logged ``CERTIFICATE_VERIFY_FAILED`` for ever and never registered. The command now
    names the CA, absolute."""
    make_self_signed(tmp_path / "ca.crt", tmp_path / "ca.key", ["127.0.0.1"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "home"), LLM_MESH_HOME=str(tmp_path / "mesh"),
               LLM_MESH_REGISTRY_CA="ca.crt")  # fmt: skip  # relative: said absolute
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        ["bash", str(SCRIPT), "--venv", str(VENV), "--skip-install", *SIM,
         "--registry", "https://127.0.0.1:9", "--no-start"],
        env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    command = printed_start(done.stdout)
    assert command[-2:] == ["--registry-ca", str(tmp_path / "ca.crt")], command
    # and node.toml keeps it (found 2026-12-06, cli36: it had no key for it, so `llm-mesh
    # earnings` in this home needed --registry-ca every time; failed before: no key)
    config = tomllib.loads((tmp_path / "mesh" / "node.toml").read_text())
    assert config["registry_ca"] == str(tmp_path / "ca.crt"), config
    del env["LLM_MESH_REGISTRY_CA"]  # a re-run from a shell without it keeps it
    again = subprocess.run(
        ["bash", str(SCRIPT), "--venv", str(VENV), "--skip-install", *SIM,
         "--registry", "https://127.0.0.1:9", "--no-start"],
        env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    config = tomllib.loads((tmp_path / "mesh" / "node.toml").read_text())
    assert config["registry_ca"] == str(tmp_path / "ca.crt"), config
