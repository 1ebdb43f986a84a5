"""What every ``llm-mesh`` command shares: consoles, option types, settings, errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from LLM_Mesh.config import Settings

console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="State directory [env LLM_MESH_HOME, default ~/.llm-mesh]"),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL, or several replicas as URL,URL,... (tried in turn) "
        "[env LLM_MESH_REGISTRY_URL]",
    ),
]

RegistryCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        help="CA file (PEM) to trust for an https registry besides the system's "
        "[env LLM_MESH_REGISTRY_CA]",
    ),
]


def settings_from(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    """The process's one Settings: the environment, overridden by flags."""
    return Settings.from_env(
        home=home, registry_url=registry.rstrip("/") if registry else None, **kw
    )


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # one line per heartbeat is noise; the mesh's own loggers say what matters
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as a one-line error and return the Exit(1) to raise."""
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(1)
