"""``registry serve`` runs uvicorn with the guards against clients that hold its resources
(``slow_clients.py``): the slow consumer's write stall bound, and a soft limit of open files
raised towards 65,536, so that idle connections from one client (each held up to the read
timeout) do not take every file descriptor (found 2026-12-05: with the usual soft limit, ~35
connections a second; a registry at 256 answered nothing more with 300 open). docs/security.md,
"Request limits"."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.slow_clients import WRITE_STALL_S
from tests.ports import free_port


def test_serve_raises_the_file_limit_and_bounds_write_stalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import LLM_Mesh.registry.stop_watchdog as watchdog
    from LLM_Mesh.registry.app import serve

    given: dict[str, object] = {}
    monkeypatch.setattr(watchdog, "run_bounded", lambda app, budget, **kw: given.update(kw))
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = before[1]
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        serve(Settings(home=tmp_path / "home"), port=free_port())
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    assert soft == want  # before: 256, what the process was started with
    protocol = given["http"]
    assert protocol.write_stall_s == WRITE_STALL_S  # type: ignore[attr-defined]


def _home_files(home: Path) -> set[str]:
    return {p.name for p in home.iterdir()} if home.exists() else set()


async def test_a_refused_start_leaves_no_database_it_made(tmp_path: Path) -> None:
    """Found 2026-12-05: `registry serve` refused (here a rollback: the home keeps a
    checkpoint, its `registry.db` was deleted) left an empty `registry.db` in the home,
    made by its own checks before the refusal: a later start took it for a new, empty
    network. Now a refused start removes the database files it made, and only those."""
    from LLM_Mesh.errors import LedgerBehind
    from LLM_Mesh.registry.app import serve
    from LLM_Mesh.registry.ledger_mark import MARK_FILE
    from tests.registry.test_ledger_mark import serve_and_pay

    home = tmp_path / "home"
    db = home / "registry.db"
    await serve_and_pay(home, f"sqlite:///{db}", 2)
    for f in home.glob("registry.db*"):
        f.unlink()
    before = _home_files(home)
    assert MARK_FILE in before
    with pytest.raises(LedgerBehind):
        await asyncio.to_thread(serve, Settings(home=home), port=free_port())
    assert _home_files(home) == before  # before the fix: registry.db (0 bytes) left
    # a database that was there is never removed, empty or not
    db.touch()
    with pytest.raises(LedgerBehind):
        await asyncio.to_thread(serve, Settings(home=home), port=free_port())
    assert db.exists()


def test_a_start_refused_after_its_checks_leaves_no_database_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a refusal once the store's checks passed (the app cannot be made from
    the settings): nothing of the store's is left in a new home."""
    import LLM_Mesh.registry.app as registry_app

    def refuse(*args: object, **kw: object) -> None:
        raise ValueError("refused")

    monkeypatch.setattr(registry_app, "create_registry_app", refuse)
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="refused"):
        registry_app.serve(Settings(home=home), port=free_port())
    assert not any(p.name.startswith("registry.db") for p in home.glob("*"))


def test_the_store_check_makes_no_database(tmp_path: Path) -> None:
    """:func:`sqlite_unusable` checks a missing file's folder without making the file."""
    from LLM_Mesh.registry.store_checks import sqlite_unusable

    db = tmp_path / "home" / "registry.db"
    assert sqlite_unusable(f"sqlite:///{db}") is None
    assert not db.exists()
    db.write_bytes(b"not a database, but long enough to be read as a header")
    said = sqlite_unusable(f"sqlite:///{db}")
    assert said is not None and "cannot open the database" in said


def test_a_database_that_is_a_dangling_link_is_refused_and_the_link_kept(tmp_path: Path) -> None:
    """``registry serve`` on a home whose ``registry.db`` is a symbolic link leading nowhere:
    refused in one line naming it (SQLite made its target 0644: files41), and the link, there
    before the start, kept (before: the refusal's clean-up took it for a file it made)."""
    from LLM_Mesh.errors import StoreUnavailable
    from LLM_Mesh.registry.app import serve

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "registry.db"
    target.parent.mkdir()
    (home / "registry.db").symlink_to(target)
    with pytest.raises(StoreUnavailable, match="is a symbolic link to"):
        serve(Settings(home=home), port=free_port())
    assert (home / "registry.db").is_symlink() and not target.exists()
