"""``llm-mesh node ...``: run and manage a hosting node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.common import HomeOpt, RegistryOpt, fail, settings_from, setup_logging
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT
from LLM_Mesh.errors import MeshError

node_app = typer.Typer(help="Run and manage a hosting node.", no_args_is_help=True)


@node_app.command("start")
def node_start(
    registry: RegistryOpt = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Catalog id, path to a .gguf, or name=path (repeatable)"),
    ] = None,
    engine: Annotated[str | None, typer.Option(help="llama-cpp | openai | sim")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help=f"Port [{DEFAULT_NODE_PORT}]")] = None,
    region: Annotated[str | None, typer.Option(help="Region label, e.g. eu-west")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="URL the registry reaches this node at")
    ] = None,
    upstream_url: Annotated[
        str | None, typer.Option(help="openai engine: the upstream server's base URL")
    ] = None,
    node_id: Annotated[str | None, typer.Option(help="Node id [persisted in home]")] = None,
    config: Annotated[
        Path | None, typer.Option(help="node.toml to read (flags override it)")
    ] = None,
    max_concurrency: int | None = None,
    max_queue: int | None = None,
    sim_ttft_s: Annotated[
        float | None, typer.Option(help="sim engine: time to first token")
    ] = None,
    sim_tokens_per_s: Annotated[
        float | None, typer.Option(help="sim engine: tokens per second")
    ] = None,
    sim_failure_rate: Annotated[
        float | None, typer.Option(help="sim engine: failure rate 0..1")
    ] = None,
    home: HomeOpt = None,
    verbose: bool = False,
) -> None:
    """Run a node serving one or more models and register it with the registry."""
    from dataclasses import replace

    from LLM_Mesh.node.config import NodeConfig, load_node_config
    from LLM_Mesh.node_manager import NodeManager

    setup_logging(verbose)
    settings = settings_from(home, registry)
    try:
        cfg = load_node_config(config) if config else NodeConfig(registry_url=settings.registry_url)
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    overrides: dict[str, Any] = {
        "models": list(model) if model else None,
        "engine": engine,
        "host": host,
        "port": port,
        "region": region,
        "public_url": public_url,
        "upstream_url": upstream_url,
        "node_id": node_id,
        "max_concurrency": max_concurrency,
        "max_queue": max_queue,
        "registry_url": registry.rstrip("/") if registry else None,
        "sim_ttft_s": sim_ttft_s,
        "sim_tokens_per_s": sim_tokens_per_s,
        "sim_failure_rate": sim_failure_rate,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if not cfg.models:
        cfg = replace(cfg, models=[DEFAULT_MODEL])
    if cfg.registry_url and cfg.registry_url != settings.registry_url:
        settings = replace(settings, registry_url=cfg.registry_url)
    try:
        NodeManager(cfg, settings).run()
    except MeshError as exc:
        raise fail(exc) from exc
