"""A store whose schema is newer than this llm-mesh (its Alembic revision is one this code
does not know: the package was downgraded, or an older one shares the database) is said in
one line, exit 1, by every command that opens it (found 2026-12-04: ``registry serve``
stopped with Alembic's traceback, exit 3, after start-up began)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from LLM_Mesh import __version__
from LLM_Mesh.cli.main import app
from LLM_Mesh.registry import workers
from LLM_Mesh.registry.schema_version import schema_unknown
from LLM_Mesh.registry.store import SqlStore
from tests.ports import free_port

runner = CliRunner()
FUTURE = "9999_from_a_newer_llm_mesh"


def _free_port() -> int:
    return free_port()


async def _stamp_future(url: str) -> None:
    """A store migrated by this code, then stamped as a newer llm-mesh leaves it."""
    async with SqlStore(url) as store, store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})


@pytest.fixture
def future_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state' / 'registry.db'}"
    asyncio.run(_stamp_future(url))
    return url


def _says_it_in_one_line(out: Any) -> None:
    said = " ".join(out.output.split())
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "Traceback" not in out.output and out.output.count("error:") == 1, out.output
    assert (
        f"error: the database's schema is at revision {FUTURE}, which this llm-mesh (version "
        f"{__version__}) does not know: it was upgraded by a newer llm-mesh; run that "
        "version, or restore a backup" in said
    ), said


def test_registry_serve_says_it_before_serving(tmp_path: Path, future_sqlite: str) -> None:
    args = ["registry", "serve", "--home", str(tmp_path / "home"), "--port", str(_free_port()),
            "--database-url", future_sqlite]  # fmt: skip
    _says_it_in_one_line(runner.invoke(app, args, env={"COLUMNS": "300"}))


def test_ledger_verify_on_the_store_says_it(tmp_path: Path, future_sqlite: str) -> None:
    args = ["ledger", "verify", "--home", str(tmp_path / "home"), "--database-url", future_sqlite]
    _says_it_in_one_line(runner.invoke(app, args, env={"COLUMNS": "300"}))


def test_registry_operators_list_says_it(tmp_path: Path, future_sqlite: str) -> None:
    args = ["registry", "operators", "list", "--home", str(tmp_path / "home"),
            "--database-url", future_sqlite]  # fmt: skip
    _says_it_in_one_line(runner.invoke(app, args, env={"COLUMNS": "300"}))


def test_up_says_it_before_starting_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    asyncio.run(_stamp_future(f"sqlite:///{home / 'registry.db'}"))
    args = ["up", "--home", str(home), "--engine", "sim", "--model", "sim-x",
            "--registry-port", str(_free_port()), "--node-port", str(_free_port())]  # fmt: skip
    _says_it_in_one_line(runner.invoke(app, args, env={"COLUMNS": "300"}))
    assert not (home / "logs").exists()  # no registry or node started


def test_the_store_is_left_as_it_was(tmp_path: Path, future_sqlite: str) -> None:
    args = ["registry", "operators", "list", "--home", str(tmp_path / "home"),
            "--database-url", future_sqlite]  # fmt: skip
    runner.invoke(app, args)
    conn = sqlite3.connect(future_sqlite.removeprefix("sqlite:///"))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(FUTURE,)]
    finally:
        conn.close()


def test_registry_serve_with_workers_says_it_before_any_worker_starts(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_stamp_future(pg_database_url))
    started: list[object] = []
    monkeypatch.setattr(workers.WorkerSupervisor, "run", lambda self: started.append(self) or 0)
    args = ["registry", "serve", "--home", str(tmp_path / "home"), "--port", str(_free_port()),
            "--workers", "2", "--database-url", pg_database_url]  # fmt: skip
    _says_it_in_one_line(runner.invoke(app, args, env={"COLUMNS": "300"}))
    assert not started


def test_a_known_schema_passes_the_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    assert asyncio.run(schema_unknown(url)) is None  # no store yet

    async def migrate() -> None:
        async with SqlStore(url):
            pass

    asyncio.run(migrate())
    assert asyncio.run(schema_unknown(url)) is None  # this code's head
