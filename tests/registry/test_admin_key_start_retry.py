"""The admin key a registry makes at its first start, announced once, also when the start's
steps run again after a lost connection (``start_retry.py``, pgstart36).

Found 2026-12-06 (review37): the key's file was made, then its hash's write to the store lost
the connection; the step ran again, read the key from the file as one made before, and never
announced it (``llm-mesh: made this registry's admin key (shown once ...)``): the operator
was never shown the key it must use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.secret_files import admin_key_path
from tests.registry.helpers import make_settings


class LosesOnce(MemoryStore):
    """A store whose ``what`` loses its connection once."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.lost = 1

    def _lose(self, what: str) -> None:
        if what == self.what and self.lost:
            self.lost -= 1
            raise ConnectionResetError(104, "Connection reset by peer")

    async def set_admin_key_hash(self, *a: Any, **kw: Any) -> Any:
        self._lose("set_admin_key_hash")
        return await super().set_admin_key_hash(*a, **kw)

    async def list_nodes(self, *a: Any, **kw: Any) -> Any:
        self._lose("list_nodes")
        return await super().list_nodes(*a, **kw)


async def _start(tmp_path: Path, store: MemoryStore) -> list[str]:
    said: list[str] = []
    settings = make_settings(tmp_path, admin_key=None)
    async with httpx.AsyncClient() as upstream:
        app = create_registry_app(settings, store=store, http_client=upstream, announce=said.append)
        async with app.router.lifespan_context(app):
            assert store.lost == 0  # the step was run again
            made = admin_key_path(settings).read_text().strip()
    assert said == [made]
    return said


async def test_a_key_whose_first_record_lost_the_connection_is_still_announced(
    tmp_path: Path,
) -> None:
    await _start(tmp_path, LosesOnce("set_admin_key_hash"))  # before the fix: never said


async def test_a_key_recorded_before_a_later_step_lost_is_announced_once(tmp_path: Path) -> None:
    await _start(tmp_path, LosesOnce("list_nodes"))


async def test_the_key_made_is_announced_with_its_files_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 2026-12-07 (newuser45): the announcement said "kept in $LLM_MESH_HOME/admin.key"
    literally: with no LLM_MESH_HOME set (the default home) or a `--home`, no such
    variable tells the admin where the file is."""
    settings = make_settings(tmp_path, admin_key=None)
    async with httpx.AsyncClient() as upstream:
        app = create_registry_app(settings, store=MemoryStore(), http_client=upstream)
        async with app.router.lifespan_context(app):
            made = admin_key_path(settings).read_text().strip()
    said = capsys.readouterr().err
    assert f"kept in {admin_key_path(settings)}, mode 0600): {made}" in said, said
    assert "$LLM_MESH_HOME" not in said
