"""The admin key (registry/admin.py): made once at the first start, printed once, shared
through the store; ``$LLM_MESH_ADMIN_KEY`` rotates it; the CLI never rotates it."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.registry.admin import bearer, ensure_admin_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore


async def test_first_start_makes_the_key_and_announces_it_once(tmp_path: Path) -> None:
    store = MemoryStore()
    settings = Settings(home=tmp_path)
    said: list[str] = []
    for _ in range(2):
        app = create_registry_app(settings, store=store, announce=said.append)
        async with app.router.lifespan_context(app):
            pass
    assert len(said) == 1 and said[0].startswith("lma_")
    path = tmp_path / "admin.key"
    assert path.read_text().strip() == said[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.admin_key_hash == hash_secret(said[0])


async def test_env_key_rotates_for_the_registry_not_for_the_cli(tmp_path: Path) -> None:
    store = MemoryStore()
    first = await ensure_admin_key(Settings(home=tmp_path), store)
    assert first.created and first.matches_store
    cli = await ensure_admin_key(
        Settings(home=tmp_path, admin_key="other"), store, env_rotates=False
    )
    assert not cli.matches_store and store.admin_key_hash == hash_secret(first.key or "")
    reg = await ensure_admin_key(Settings(home=tmp_path, admin_key="other"), store)
    assert reg.matches_store and store.admin_key_hash == hash_secret("other")
    # the old file's key is not the store's any more
    stale = await ensure_admin_key(Settings(home=tmp_path), store)
    assert not stale.matches_store and not stale.created


async def test_a_second_home_on_the_same_store_gets_no_key_of_its_own(tmp_path: Path) -> None:
    store = MemoryStore()
    await ensure_admin_key(Settings(home=tmp_path / "a"), store)
    other = await ensure_admin_key(Settings(home=tmp_path / "b"), store)
    assert other.key is None and not other.created and not other.matches_store
    assert not (tmp_path / "b" / "admin.key").exists()


def test_bearer() -> None:
    assert bearer({"authorization": "Bearer abc"}) == "abc"
    assert bearer({"authorization": "bearer  abc "}) == "abc"
    assert bearer({"authorization": "Basic abc"}) is None
    assert bearer({}) is None
