"""A store's URL as SQLAlchemy's async engines take it (split from ``config.py``, rot42;
``from LLM_Mesh.config import normalize_database_url`` still works)."""

from __future__ import annotations

__all__ = ["normalize_database_url"]


def normalize_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite://`` URLs and pick the async driver;
    ``ValueError`` saying how to write one for anything else (e.g. a bare file path)."""
    if "://" not in url:
        raise ValueError(
            f"database URL {url!r} is not a URL: write a SQLite file as sqlite:///{url} "
            "(the default store: sqlite:///$LLM_MESH_HOME/registry.db), PostgreSQL as "
            "postgresql://USER@HOST/DB"
        )
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url
