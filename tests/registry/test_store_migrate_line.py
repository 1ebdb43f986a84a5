"""What the store says of its migrations: one line when it migrated, none when it had
nothing to do (alembic's own lines are DEBUG's: ``logs.setup_logging``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from LLM_Mesh.registry.schema_version import MIGRATIONS_DIR
from LLM_Mesh.registry.store_migrate import migrate_to_head


def _head() -> str:
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    return str(head)


def test_a_new_store_says_it_was_migrated_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    caplog.set_level("INFO", logger="LLM_Mesh.registry.store_migrate")
    with engine.begin() as conn:
        migrate_to_head(conn)
    said = [r.getMessage() for r in caplog.records if r.name == "LLM_Mesh.registry.store_migrate"]
    assert said == [f"store: a new store, migrated to schema {_head()}"], said
    caplog.clear()
    with engine.begin() as conn:
        migrate_to_head(conn)  # at head already: nothing to say
    assert not [r for r in caplog.records if r.name == "LLM_Mesh.registry.store_migrate"]
    engine.dispose()
