"""``llm-mesh registry serve --workers N``: what the command checks before it supervises
workers, and the command line each worker is given (``cli/registry_serve.py``). The
supervisor itself: tests/registry/test_workers.py (and its ``_heartbeats``, ``_socket``
siblings); the real command on PostgreSQL: tests/e2e/test_workers.py."""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import registry_serve
from LLM_Mesh.cli.main import app
from LLM_Mesh.registry import store_checks, workers
from tests.ports import free_port

runner = CliRunner()
PG = "postgresql://postgres@127.0.0.1:5432/nowhere"


@pytest.fixture
def supervisors(monkeypatch: pytest.MonkeyPatch) -> list[workers.WorkerSupervisor]:
    """The supervisors the command made (not run), with the database taken as reachable
    and its schema as known."""

    async def reachable(_url: str, **_kw: Any) -> None:
        return None

    monkeypatch.setattr(store_checks, "database_unreachable", reachable)
    monkeypatch.setattr(store_checks, "schema_unknown", reachable)
    made: list[workers.WorkerSupervisor] = []

    def run(self: workers.WorkerSupervisor) -> int:
        made.append(self)
        return 0

    monkeypatch.setattr(workers.WorkerSupervisor, "run", run)
    return made


def _said(out: Any) -> str:
    return " ".join(out.output.split())


def _free_port() -> int:
    return free_port()


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "2"],
                        env={"COLUMNS": "300"})  # fmt: skip
    said = _said(out)
    assert out.exit_code == 1 and "Traceback" not in said, said
    assert "--workers 2 needs a PostgreSQL store" in said, said
    assert not (tmp_path / "registry.db").exists()  # nothing started


def test_the_workers_setting_is_also_read_from_the_environment(tmp_path: Path) -> None:
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path)],
                        env={"COLUMNS": "300", "LLM_MESH_REGISTRY_WORKERS": "3"})  # fmt: skip
    assert out.exit_code == 1 and "--workers 3 needs a PostgreSQL store" in _said(out)


def test_a_worker_count_out_of_bounds_is_refused(tmp_path: Path) -> None:
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "0"])
    assert out.exit_code == 2  # a usage error
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "65",
                              "--database-url", PG], env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 1 and "--workers 65: at most 64" in _said(out), _said(out)


def test_the_help_says_the_worker_bound() -> None:
    # found 2026-12-04: --help did not say that more than 64 is refused
    out = runner.invoke(app, ["registry", "serve", "--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0 and "…" not in out.output, out.output
    said = " ".join(out.output.replace("│", " ").split())
    assert f"at most {registry_serve.MAX_WORKERS}" in said, said


def test_a_taken_port_is_said_before_any_worker_starts(
    tmp_path: Path, supervisors: list[workers.WorkerSupervisor]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "2",
                                  "--database-url", PG, "--port", str(port)],
                            env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 1 and "already in use" in _said(out), _said(out)
    assert not supervisors


def test_an_unreachable_database_is_said_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, supervisors: list[workers.WorkerSupervisor]
) -> None:
    async def unreachable(_url: str, **_kw: Any) -> str:
        return "cannot reach PostgreSQL at 127.0.0.1:5432"

    monkeypatch.setattr(store_checks, "database_unreachable", unreachable)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "2",
                              "--database-url", PG, "--port", str(_free_port())],
                        env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 1 and "cannot reach PostgreSQL" in _said(out), _said(out)
    assert not supervisors


def test_each_worker_gets_the_options_given_on_the_command_line(
    tmp_path: Path, supervisors: list[workers.WorkerSupervisor]
) -> None:
    port = _free_port()
    given = ["--home", str(tmp_path), "--port", str(port), "--database-url", PG, "--verbose",
             "--allow-private-node", "http://10.0.0.1:8801", "--allow-private-node",
             "http://10.0.0.2:8801", "--anonymous-rpm", "0", "--trusted-proxies", "10.0.0.5"]  # fmt: skip
    out = runner.invoke(app, ["registry", "serve", "--workers", "4", *given],
                        env={"COLUMNS": "300", "LLM_MESH_ANONYMOUS_RPM": "7"})  # fmt: skip
    assert out.exit_code == 0, _said(out)
    (sup,) = supervisors
    assert (sup.n, sup.host, sup.port) == (4, "127.0.0.1", port)
    assert sup.stop_timeout_s == 80.0 + 10.0  # the workers' own stop budget, then 10 s
    argv: Sequence[str] = sup.command(2)
    assert argv[:5] == [sys.executable, "-m", "LLM_Mesh.cli", "registry", "serve"]
    assert argv[-4:] == ["--workers", "1", "--worker-index", "2"]
    # in the command's own order of options; each as given (the environment's
    # LLM_MESH_ANONYMOUS_RPM=7 is not what the command line said)
    assert list(argv[5:-4]) == [
        "--port", str(port), "--database-url", PG, "--home", str(tmp_path), "--verbose",
        "--allow-private-node", "http://10.0.0.1:8801", "--allow-private-node",
        "http://10.0.0.2:8801", "--anonymous-rpm", "0", "--trusted-proxies", "10.0.0.5",
    ]  # fmt: skip


def test_a_worker_is_not_told_what_it_inherits_from_the_environment() -> None:
    import typer

    command = typer.main.get_command(app)
    ctx = command.make_context("llm-mesh", ["registry", "serve", "--port", "9000"])
    sub = ctx.command.get_command(ctx, "registry")  # type: ignore[attr-defined]
    sctx = sub.make_context("registry", ["serve", "--port", "9000"], parent=ctx)
    serve = sub.get_command(sctx, "serve")
    leaf = serve.make_context("serve", ["--port", "9000"], parent=sctx)
    assert registry_serve.worker_args(leaf) == ["--port", "9000"]  # not the defaults


@pytest.mark.parametrize(("shutdown_s", "stop_s"), [("80", 90.0), ("25", 35.0), ("0", None)])
def test_the_workers_stop_budget_follows_the_registrys_own(
    tmp_path: Path,
    supervisors: list[workers.WorkerSupervisor],
    shutdown_s: str,
    stop_s: float | None,
) -> None:
    """A worker is killed 10 s after its own stop bound, LLM_MESH_REGISTRY_SHUTDOWN_S; 0 is
    no bound, so never (found 2026-12-04: 0 killed every worker 10 s after the signal)."""
    out = runner.invoke(app, ["registry", "serve", "--workers", "2", "--home", str(tmp_path),
                              "--database-url", PG, "--port", str(_free_port())],
                        env={"COLUMNS": "300", "LLM_MESH_REGISTRY_SHUTDOWN_S": shutdown_s})  # fmt: skip
    assert out.exit_code == 0, _said(out)
    (sup,) = supervisors
    assert sup.stop_timeout_s == stop_s


def test_port_0_is_refused_with_workers(
    tmp_path: Path, supervisors: list[workers.WorkerSupervisor]
) -> None:
    """--port 0 gives each worker a port of its own, none the supervisor waits on (found
    2026-12-04: worker 0 served on a random port, then `did not listen on 127.0.0.1:0
    within 120 s` and the stop)."""
    out = runner.invoke(app, ["registry", "serve", "--workers", "2", "--home", str(tmp_path),
                              "--database-url", PG, "--port", "0"], env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 1 and "--workers 2 needs a fixed --port" in _said(out), _said(out)
    assert not supervisors


@pytest.mark.parametrize(("given", "env", "timeout_s"), [
    ([], {}, 30.0),
    (["--worker-timeout", "5"], {}, 5.0),
    (["--worker-timeout", "0"], {}, 0.0),
    ([], {"LLM_MESH_REGISTRY_WORKER_TIMEOUT": "12.5"}, 12.5),
])  # fmt: skip
def test_the_worker_timeout_goes_to_the_supervisor_not_to_the_workers(
    tmp_path: Path,
    supervisors: list[workers.WorkerSupervisor],
    given: list[str],
    env: dict[str, str],
    timeout_s: float,
) -> None:
    out = runner.invoke(app, ["registry", "serve", "--workers", "2", "--home", str(tmp_path),
                              "--database-url", PG, "--port", str(_free_port()), *given],
                        env={"COLUMNS": "300", **env})  # fmt: skip
    assert out.exit_code == 0, _said(out)
    (sup,) = supervisors
    assert sup.hang.timeout_s == timeout_s
    assert "--worker-timeout" not in sup.command(1)  # a worker supervises nothing


def test_a_negative_worker_timeout_is_refused(tmp_path: Path) -> None:
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "2",
                              "--database-url", PG, "--worker-timeout", "-1"])  # fmt: skip
    assert out.exit_code == 2  # a usage error


@pytest.mark.parametrize("given", ["0.5", "1", "4.9", "nan"])
def test_a_worker_timeout_within_a_few_beats_is_refused(tmp_path: Path, given: str) -> None:
    """A worker beats once a second (``worker_beat.BEAT_S``), and the supervisor sees it
    up to ``_POLL_S`` later: a timeout of about a beat killed healthy, idle workers, one
    after another (found 2026-12-04, review: ``--worker-timeout 1`` was taken). At least
    ``MIN_WORKER_TIMEOUT_S`` (5 beats), or 0 (never)."""
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), "--workers", "2",
                              "--database-url", PG, "--worker-timeout", given],
                        env={"COLUMNS": "300"})  # fmt: skip
    assert out.exit_code == 2 and "0, or 5 seconds or more" in _said(out), _said(out)


def test_the_help_says_the_worker_timeout_and_its_default() -> None:
    out = runner.invoke(app, ["registry", "serve", "--help"], env={"COLUMNS": "80"})
    said = " ".join(out.output.replace("│", " ").split())
    assert out.exit_code == 0 and "--worker-timeout" in said, said
    assert "LLM_MESH_REGISTRY_WORKER_TIMEOUT, default 30]" in said, said
