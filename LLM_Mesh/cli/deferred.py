"""What the top level's commands (``local_commands.py``, ``network_commands.py``,
``tool_commands.py``) share: ``common.py``'s helpers, imported when called, so that
``--version``, ``--help`` and ``ask`` import no pydantic, starlette, httpx or cryptography
before they run (speed36; ``common.py`` imports the settings, the client and more)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from LLM_Mesh.client_replicas import ReplicaMemory
    from LLM_Mesh.config import Settings


def fail(exc: Exception, settings: Settings | None = None) -> typer.Exit:
    """``common.fail``; with ``settings``, a registry that did not answer says where its URL
    came from."""
    from LLM_Mesh.cli.common import fail as failed
    from LLM_Mesh.cli.common import registry_said

    return failed(registry_said(exc, settings))


def settings_from(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    from LLM_Mesh.cli.common import settings_from as made

    return made(home, registry, **kw)


def registry_settings(home: Path | None, registry: str | None, **kw: Any) -> Settings:
    """:func:`settings_from` for a command that reaches a registry: node.toml's registry_ca too."""
    from LLM_Mesh.cli.common import registry_settings as made

    return made(home, registry, **kw)


def replica_memory(settings: Settings) -> ReplicaMemory:
    from LLM_Mesh.cli.common import replica_memory as memory

    return memory(settings)


def warn_plain_http(urls: tuple[str, ...], what: str) -> None:
    from LLM_Mesh.cli.common import warn_plain_http as warn

    warn(urls, what)


def ca(path: Path | None) -> str | None:
    """``--registry-ca``'s path as the settings take it."""
    return str(path.expanduser()) if path else None
