"""./setup-node-operator.sh: a taken port stops it (before the venv and the install, or
at the config step), and a new port or registry moves the address it chose."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.ports import free_port

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib
from tests.setup_script import SCRIPT, run


def test_a_port_already_taken_is_said_with_the_flag_to_pick_another(tmp_path: Path) -> None:
    """Found 2026-12-03: with 8801 taken (``llm-mesh up``'s node) the dry run and the real
    run said nothing, and the node could not start there. Both say so now, with
    ``--port`` (a free one); on a free port, nothing."""
    sim = ("--yes", "--engine", "sim", "--models", "mistral-7b")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for mode in ("--dry-run", "--no-start"):
            proc = run(tmp_path, *sim, "--port", str(port), mode)
            said = " ".join(proc.stderr.split())
            assert f"port {port} on 127.0.0.1 is already in use" in said, proc.stderr
            assert "--port " in said.split("already in use", 1)[1], proc.stderr
    cfg = tomllib.loads((tmp_path / "mesh" / "node.toml").read_text())
    assert cfg["port"] == port  # a note, not a refusal: the operator may free the port
    free = run(tmp_path, *sim, "--port", str(port), "--no-start")
    assert "already in use" not in free.stderr, free.stderr


def test_a_run_that_starts_the_node_stops_at_a_taken_port(tmp_path: Path) -> None:
    """Found 2026-12-06 (cli38): ``./setup-node-operator.sh`` with no arguments (node.toml's
    port, or 8801) went on past a taken port, noted, wrote node.toml and started a node that
    could not listen. It stops now, naming the port and a free ``--port``, writing nothing;
    its dry run says a real run would stop there."""
    port = free_port()
    run(tmp_path, "--yes", "--no-start", "--engine", "sim", "--models", "mistral-7b",
        "--port", str(port))  # fmt: skip
    config = tmp_path / "mesh" / "node.toml"
    before = config.read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = run(tmp_path, check=False)  # no arguments: node.toml's port
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"error: port {port} on 127.0.0.1 is already in use" in said, said  # (failed
        # before: a note, node.toml written, and the node started, which stopped on the port)
        # what was written before the check is said so (found 2026-12-06, review38b: it said
        # "nothing was written" after the venv's install and node.key); the check now comes
        # before those (setup38): nothing was written, truly
        stopped = "stopped before the venv, the install and the model download"
        assert f"{stopped}: nothing was written" in said, said
        fix = said.split("how to fix: ", 1)[1]
        free = int(fix.split("--port ", 1)[1].split()[0])
        assert free != port and 0 < free < 65536, fix
        assert "starting the node" not in proc.stdout
        assert config.read_text() == before
        dry = run(tmp_path, "--dry-run")
        assert f"a real run would stop here: port {port} on 127.0.0.1" in " ".join(
            dry.stdout.split() + dry.stderr.split()
        ), dry.stdout + dry.stderr


def _logging_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv whose ``python`` logs each call and passes it to the tests' Python, except
    ``-m pip`` (logged only: the install step's marker, at no cost)."""
    venv, calls = tmp_path / "logged-venv", tmp_path / "python-calls"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        f'#!/bin/sh\necho "$*" >>"{calls}"\n'
        f'if [ "$1 $2" = "-m pip" ]; then exit 0; fi\nexec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    calls.touch()
    return venv, calls


def test_a_taken_port_stops_the_run_before_the_venv_and_the_install(tmp_path: Path) -> None:
    """Found 2026-12-06 (setup38): a run that would start the node checked the port only at
    the config step, after the venv, the install and the model download (minutes). It stops
    before them now: no venv made, no ``pip install`` run; its dry run says so before the
    venv and install commands it would run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MESH_")}
    env.update(HOME=str(tmp_path / "home"), LLM_MESH_HOME=str(tmp_path / "mesh"))
    (tmp_path / "home").mkdir()
    venv, calls = _logging_venv(tmp_path)
    new_venv = tmp_path / "new-venv"

    def setup(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), "--yes", "--engine", "sim", "--models", "mistral-7b", *args],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
            check=False,
        )  # fmt: skip

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = setup("--venv", str(venv), "--port", port)
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"error: port {port} on 127.0.0.1 is already in use" in said, said
        assert "-m pip" not in calls.read_text(), calls.read_text()  # (failed before)
        assert "hardware:" not in proc.stdout and not (tmp_path / "mesh").exists()
        proc = setup("--venv", str(new_venv), "--port", port)
        assert proc.returncode == 1 and not new_venv.exists(), proc.stdout + proc.stderr
        dry = subprocess.run(
            ["bash", str(SCRIPT), "--dry-run", "--yes", "--engine", "sim", "--venv",
             str(new_venv), "--port", port],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, timeout=300, check=False,
        )  # fmt: skip
        out = " ".join(dry.stdout.split())
        stop = out.index(f"a real run would stop here: port {port} on 127.0.0.1")
        assert stop < out.index("venv: creating") < out.index("-m pip install"), out
    # a free port: the same run goes through the install step (the marker can be seen)
    proc = setup("--venv", str(venv), "--port", port, "--no-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-m pip install" in calls.read_text(), calls.read_text()


def test_a_port_taken_during_the_install_is_still_caught_at_the_config_step(
    tmp_path: Path,
) -> None:
    """The early check found the port free; something took it during the minutes after
    (here: while the hardware is detected). The config step checks again: the run stops,
    saying what was written (the venv and node.key) and that node.toml was not."""
    venv, _ = _logging_venv(tmp_path)
    port, pid = free_port(), tmp_path / "listener.pid"
    listener = (
        "import os, socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])));"
        " s.listen(); open(sys.argv[2], 'w').write(str(os.getpid())); time.sleep(120)"
    )
    python = venv / "bin" / "python"
    python.write_text(
        python.read_text().replace(
            "exec ",
            f'case "$*" in *LLM_Mesh.node.hardware*) "{sys.executable}" -c "{listener}" '
            f'{port} "{pid}" >/dev/null 2>&1 </dev/null & while [ ! -s "{pid}" ]; do sleep 0.05; done ;; esac\nexec ',
            1,
        )
    )
    try:
        proc = run(tmp_path, "--yes", "--engine", "sim", "--models", "mistral-7b", "--venv",
                   str(venv), "--port", str(port), check=False)  # fmt: skip
    finally:
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: port {port} on 127.0.0.1 is already in use" in said, said
    assert "node.toml was not written (the venv and node.key are kept" in said, said
    assert not (tmp_path / "mesh" / "node.toml").exists()
    assert "starting the node" not in proc.stdout


def test_a_new_port_or_registry_moves_the_address_the_script_chose(tmp_path: Path) -> None:
    """Found 2026-12-03: run again with --port 8802 (8801 was taken by `llm-mesh up`'s node),
    node.toml got port 8802 but kept public_url http://127.0.0.1:8801, so the node registered
    the other node's address and failed every health check ("answers as node ...")."""
    config = tmp_path / "mesh" / "node.toml"
    run(tmp_path, "--yes", "--no-start", "--engine", "sim", "--models", "mistral-7b")
    proc = run(tmp_path, "--yes", "--no-start", "--port", "8802")
    cfg = tomllib.loads(config.read_text())
    assert cfg["port"] == 8802 and cfg["public_url"] == "http://127.0.0.1:8802", cfg
    assert "port forward" not in proc.stderr
    # a loopback registry made host and public_url loopback ones: a remote one moves both
    # (to https: a registry on another machine refuses plain-http nodes)
    run(tmp_path, "--yes", "--no-start", "--registry", "http://10.0.0.5:8800")
    cfg = tomllib.loads(config.read_text())
    assert cfg["host"] == "0.0.0.0", cfg
    assert cfg["public_url"] == f"https://{socket.getfqdn()}:8802", cfg
    # an address the operator gave is kept as given (a port forward may map it), in https
    run(tmp_path, "--yes", "--no-start", "--public-url", "http://203.0.113.7:9000")
    proc = run(tmp_path, "--yes", "--no-start", "--port", "8803")
    cfg = tomllib.loads(config.read_text())
    assert cfg["port"] == 8803 and cfg["public_url"] == "https://203.0.113.7:9000", cfg
    # ... and said, since it is right only behind a port forward (a node.toml the script
    # left with the old port before this fix gets the same note)
    assert "is port 9000, the node listens on 8803" in proc.stderr, proc.stderr
