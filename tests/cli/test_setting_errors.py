"""A setting the CLI cannot use is one ``error:`` line and exit 1, never a traceback.
Found 2026-12-03 (a new user's walk): ``llm-mesh ledger verify --database-url
~/.llm-mesh/registry.db`` (the store's path, which the README names) and ``registry
operators list --database-url PATH`` ended in SQLAlchemy's ``ArgumentError: Could not
parse SQLAlchemy URL`` traceback; ``LLM_MESH_HEARTBEAT_S=abc llm-mesh status`` in a
``ValueError`` traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings, normalize_database_url

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [["ledger", "verify"], ["registry", "operators", "list"], ["registry", "serve"]],
)
def test_a_database_path_for_a_url_says_how_to_write_it(tmp_path: Path, command: list[str]) -> None:
    db = str(tmp_path / "registry.db")
    out = runner.invoke(app, [*command, "--database-url", db], env={"COLUMNS": "300"})
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
    assert f"sqlite:///{db}" in said and "Traceback" not in said, said
    assert not (tmp_path / "registry.db").exists()


def test_a_bad_environment_value_is_an_error_line() -> None:
    out = runner.invoke(app, ["status"], env={"LLM_MESH_HEARTBEAT_S": "abc", "COLUMNS": "300"})
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
    assert said.startswith("error: LLM_MESH_HEARTBEAT_S must be a number"), said


def test_normalize_refuses_a_bare_path() -> None:
    with pytest.raises(ValueError, match=r"sqlite:////srv/registry.db"):
        normalize_database_url("/srv/registry.db")
    with pytest.raises(ValueError, match="postgresql://USER@HOST/DB"):
        Settings.from_env({"LLM_MESH_DATABASE_URL": "db.internal/llmmesh"})
