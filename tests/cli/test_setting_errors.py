"""A setting the CLI cannot use is one ``error:`` line and exit 1, never a traceback.
Found 2026-12-03 (a new user's walk): ``llm-mesh ledger verify --database-url
~/.llm-mesh/registry.db`` (the store's path, which the README names) and ``registry
operators list --database-url PATH`` ended in SQLAlchemy's ``ArgumentError: Could not
parse SQLAlchemy URL`` traceback; ``LLM_MESH_HEARTBEAT_S=abc llm-mesh status`` in a
``ValueError`` traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
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


def test_a_bad_stream_time_bound_is_an_error_line_and_a_good_one_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found 2026-12-03 (review): ``LLM_MESH_STREAM_MAX_S=abc llm-mesh ask --stream`` ended
    in a ``ValueError`` traceback (``MeshClient`` read the variable itself, after the
    Settings had been made); now the Settings read it: one ``error:`` line and exit 1, and
    a good value is the one the CLI's stream gets."""
    out = runner.invoke(
        app,
        ["ask", "--stream", "--model", "m", "hi", "--registry", "http://127.0.0.1:9"],
        env={"LLM_MESH_STREAM_MAX_S": "abc", "COLUMNS": "300"},
    )
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
    assert said.startswith("error: LLM_MESH_STREAM_MAX_S must be a number"), said
    assert Settings.from_env({}).stream_max_s is None  # the client's own default, 30 min
    assert Settings.from_env({"LLM_MESH_STREAM_MAX_S": "2.5"}).stream_max_s == 2.5
    with pytest.raises(ValueError, match="LLM_MESH_STREAM_MAX_S must be a positive number"):
        Settings.from_env({"LLM_MESH_STREAM_MAX_S": "0"})
    from LLM_Mesh import distributed_models as dm
    from LLM_Mesh.cli import demo

    given: list[object] = []

    class Client:
        def __init__(self, *_a: object, stream_max_s: float | None = None, **_k: object) -> None:
            given.append(stream_max_s)

        async def __aenter__(self) -> Client:
            return self

        async def __aexit__(self, *_exc: object) -> None:
            return None

        base_url = "http://127.0.0.1:9"

        def prefer(self, _url: object) -> None:  # (the registry's client: distributed_models)
            return None

        async def stream(self, *_a: object, **_k: object) -> AsyncIterator[dict[str, object]]:
            raise demo.MeshError("stop here")
            yield {}  # an async generator, as MeshClient.stream is

    monkeypatch.setattr(demo, "MeshClient", Client)
    monkeypatch.setattr(dm, "MeshClient", Client)  # ask --stream's stream is made there
    out = runner.invoke(
        app,
        ["ask", "--stream", "--model", "m", "hi", "--registry", "http://127.0.0.1:9"],
        env={"LLM_MESH_STREAM_MAX_S": "2.5", "COLUMNS": "300"},
    )
    assert given == [2.5], out.output
