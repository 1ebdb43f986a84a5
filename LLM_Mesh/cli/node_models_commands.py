"""``llm-mesh node models ...``: the model files on this node (split from
``cli/node_commands.py``, which adds this group to ``llm-mesh node``).

llm-mesh node models add ID|PATH|URL         fetch / add a model file (and to node.toml)
llm-mesh node models list                    files, sizes, sha256, configured or not
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli import node_clients
from LLM_Mesh.cli.common import HomeOpt, console, ensure_home, fail, settings_from
from LLM_Mesh.config import Settings
from LLM_Mesh.errors import MeshError

__all__ = ["config_path", "models_app"]

models_app = typer.Typer(help="Model files on this node.", no_args_is_help=True)


def config_path(settings: Settings, config: Path | None) -> Path:
    """``--config``, else the home's node.toml."""
    from LLM_Mesh.node.config import default_config_path

    return config or default_config_path(settings)


@models_app.command("add")
def models_add(
    ref: Annotated[str, typer.Argument(help="Catalog id, path to a .gguf, or an http(s) URL")],
    name: Annotated[str | None, typer.Option(help="Model id / file name for a file or URL")] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 (64 hex digits)")] = None,
    config: Annotated[Path | None, typer.Option(help="node.toml to add it to")] = None,
    allow_private_url: Annotated[
        bool,
        typer.Option(
            "--allow-private-url",
            help="The URL's own host and port may be this machine or a private network "
            "(a mirror on your LAN); where it redirects is still held to global addresses",
        ),
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Put a model file in $LLM_MESH_HOME/models and add it to node.toml (when one exists).

    A download reaches global addresses only, its redirects too (not this machine, the
    LAN or the cloud metadata address) unless --allow-private-url names the URL's own host.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from LLM_Mesh.node.download_guard import origin_of
    from LLM_Mesh.node.model_store import add_model, add_to_config, is_url

    settings = settings_from(home)
    ensure_home(settings.home)  # 0700 when made here: not the umask's, by models/ (newuser41)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # none where it would not show: rich prints an empty line when a bar stops on a
        # console that is no terminal (found 2026-12-07, small45: a failed add's stdout)
        disable=not console.is_interactive,
    ) as bar:
        task = bar.add_task(ref, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        async def go() -> Any:
            allowed = [origin_of(ref.strip())] if allow_private_url and is_url(ref) else []
            async with node_clients.download_client(allowed) as client:
                return await add_model(
                    ref, settings, client=client, name=name, sha256=sha256, progress=progress
                )

        try:
            added = asyncio.run(go())
        except (MeshError, OSError, ValueError) as exc:
            raise fail(exc) from exc
    console.print(f"[green]added[/] {added.model_id}: {added.path}")
    path = config_path(settings, config)
    try:
        changed = add_to_config(path, added.config_entry)
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    if changed:
        console.print(f"node.toml: added {added.config_entry!r} to models in {path}")
    elif path.is_file():
        console.print(f"node.toml: {added.model_id} is already in {path}")
    else:
        console.print(f"no {path}: start a node with --model {added.config_entry}")


@models_app.command("list")
def models_list(
    config: Annotated[Path | None, typer.Option(help="node.toml to compare with")] = None,
    home: HomeOpt = None,
) -> None:
    """Model files present, their sizes and sha256, and which node.toml configures."""
    from LLM_Mesh.cli.node_render import stored_models_table
    from LLM_Mesh.node.config import load_node_config
    from LLM_Mesh.node.model_files import models_dir
    from LLM_Mesh.node.model_store import list_models

    settings = settings_from(home)
    path = config_path(settings, config)
    try:
        cfg = load_node_config(path) if config or path.is_file() else None
        stored = list_models(settings, cfg)
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    if not stored:
        console.print(f"no model files in {models_dir(settings)}")
    else:
        console.print(stored_models_table(stored, console.width))
    if cfg is not None:
        console.print(f"configured in {path}: {', '.join(cfg.models)}")
