"""``llm-mesh node ...``: run and manage a hosting node.

llm-mesh node start                          run a node (flags override node.toml)
llm-mesh node models add ID|PATH|URL         fetch / add a model file (and to node.toml)
llm-mesh node models list                    files, sizes, sha256, configured or not
llm-mesh node plan                           catalog ranked by fit and network demand
llm-mesh node pause | resume | drain         the running node's state (--node-url)
llm-mesh node info                           the running node: identity, models, counters, earnings
llm-mesh node keys init                      make the node's key (node.key) if missing; show its id
llm-mesh node keys forget-gateway            forget the learned gateway key (a rotated registry key)
llm-mesh node tls init                       make a self-signed TLS certificate; show its fingerprint

``start`` and ``plan`` are here; ``models`` is ``cli/node_models_commands.py``, ``pause``,
``resume``, ``drain`` and ``info`` ``cli/node_control_commands.py``, ``keys`` and ``tls``
``cli/node_identity_commands.py``; the commands' HTTP clients ``cli/node_clients.py``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli import node_clients
from LLM_Mesh.cli.common import (
    AllowHttpFirstUseOpt,
    HomeOpt,
    LogFormatOpt,
    MetricsPublicOpt,
    NoMetricsOpt,
    RegistryCaOpt,
    RegistryOpt,
    RegistryPublicKeyOpt,
    console,
    ensure_home,
    fail,
    observability,
    settings_from,
    setup_logging,
    with_node_ca,
)
from LLM_Mesh.cli.earnings_commands import operator_token_checked
from LLM_Mesh.cli.node_control_commands import (
    node_drain,
    node_earnings_cmd,
    node_info_cmd,
    node_pause,
    node_resume,
)
from LLM_Mesh.cli.node_identity_commands import keys_app, tls_app
from LLM_Mesh.cli.node_models_commands import config_path, models_app
from LLM_Mesh.cli.options import ENGINE_HELP
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT
from LLM_Mesh.core.registry_urls import source_words, split_urls
from LLM_Mesh.errors import MeshError

node_app = typer.Typer(help="Run and manage a hosting node.", no_args_is_help=True)


@node_app.command("start")
def node_start(
    registry: RegistryOpt = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Catalog id, path to a .gguf, or name=path (repeatable)"),
    ] = None,
    engine: Annotated[str | None, typer.Option(help=ENGINE_HELP)] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help=f"Port [{DEFAULT_NODE_PORT}]")] = None,
    region: Annotated[str | None, typer.Option(help="Region label, e.g. eu-west")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="URL the registry reaches this node at")
    ] = None,
    upstream_url: Annotated[
        str | None, typer.Option(help="openai engine: the upstream server's base URL")
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(
            help="Deprecated: the id is derived from the node's key (a different one is ignored)"
        ),
    ] = None,
    operator_token: Annotated[
        str | None,
        typer.Option(
            help="Credential to register \\[node.toml operator_token, env LLM_MESH_OPERATOR_TOKEN]"
        ),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="The node's Ed25519 key [$LLM_MESH_HOME/node.key]")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="node.toml to read; flags override it \\[default: $LLM_MESH_HOME/node.toml if present]"
        ),
    ] = None,
    no_config: Annotated[
        bool, typer.Option("--no-config", help="ignore $LLM_MESH_HOME/node.toml; flags only")
    ] = False,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Requests generating at once (node.toml; default 1): together their streams must "
            "average the gateway's floor (0.25 tokens/s by default) or are cut"
        ),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(help="Requests that wait beyond those (node.toml; default 8); more get 429"),
    ] = None,
    sim_ttft_s: Annotated[
        float | None, typer.Option(help="sim engine: time to first token")
    ] = None,
    sim_tokens_per_s: Annotated[
        float | None, typer.Option(help="sim engine: tokens per second")
    ] = None,
    sim_failure_rate: Annotated[
        float | None, typer.Option(help="sim engine: failure rate 0..1")
    ] = None,
    memory_budget_bytes: Annotated[
        int | None, typer.Option(help="llama-cpp: bytes of models in memory [80 % of RAM]")
    ] = None,
    n_threads: Annotated[
        int | None, typer.Option(help="llama-cpp: CPU threads per generation [CPU count]")
    ] = None,
    availability_hours: Annotated[
        str | None, typer.Option(help="Serve only HH:MM-HH:MM local time (pauses outside)")
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve https with this PEM certificate (node tls init) \\[node.toml]"),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM key")] = None,
    trusted_peers: Annotated[
        str | None,
        typer.Option(
            help="ADDR,CIDR,... not counted against the per-peer connection cap (a "
            "load-balanced registry's egress) \\[node.toml trusted_peers, env "
            "LLM_MESH_TRUSTED_PEERS; default none]"
        ),
    ] = None,
    stream_interval_s: Annotated[
        float | None,
        typer.Option(
            help="llama-cpp: after the first token, at most one write of tokens per this many "
            "seconds, 0 to 1; 0: every token alone \\[node.toml stream_interval_s, env "
            "LLM_MESH_STREAM_INTERVAL_S; default 0.04]"
        ),
    ] = None,
    registry_ca: RegistryCaOpt = None,
    registry_public_key: RegistryPublicKeyOpt = None,
    allow_http_first_use: AllowHttpFirstUseOpt = False,
    home: HomeOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug log lines")] = False,
    log_format: LogFormatOpt = None,
    metrics_public: MetricsPublicOpt = False,
    no_metrics: NoMetricsOpt = False,
) -> None:
    """Run a node serving one or more models and register it with the registry."""
    from dataclasses import replace

    from LLM_Mesh.core.revoked_notice import TOKEN_REFUSED_EXIT
    from LLM_Mesh.errors import RegistrationRefused
    from LLM_Mesh.node.config import NodeConfig, load_node_config, local_node_url
    from LLM_Mesh.node.keys import key_in_use, key_path
    from LLM_Mesh.node_manager import NodeManager
    from LLM_Mesh.start_writes import refusal_of

    try:
        settings = settings_from(
            home, registry, registry_ca=str(registry_ca) if registry_ca else None,
            **observability(log_format, metrics_public, no_metrics),
        )  # fmt: skip
    except ValueError as exc:
        raise fail(exc) from exc
    setup_logging(verbose, settings.log_format)
    ensure_home(settings.home)
    toml = settings.home / "node.toml"
    if config is None and not no_config and toml.exists():
        config = toml
    try:
        urls = ",".join(settings.registry_urls)
        cfg = load_node_config(config) if config else NodeConfig(registry_url=urls)
        # its registry_ca unless --registry-ca/env (cli36), only for its own registry (small42)
        settings = with_node_ca(settings, cfg, config or toml, bool(registry))
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    if config is not None:
        logging.getLogger("LLM_Mesh.node").info("node config: %s", config)
    overrides: dict[str, Any] = {
        "models": list(model) if model else None,
        "engine": engine,
        "host": host,
        "port": port,
        "region": region,
        "public_url": public_url,
        "upstream_url": upstream_url,
        "node_id": node_id,
        "operator_token": operator_token,
        "key_file": str(key_file) if key_file else None,
        "max_concurrency": max_concurrency,
        "max_queue": max_queue,
        "registry_url": registry.rstrip("/") if registry else None,
        "sim_ttft_s": sim_ttft_s,
        "sim_tokens_per_s": sim_tokens_per_s,
        "sim_failure_rate": sim_failure_rate,
        "memory_budget_bytes": memory_budget_bytes,
        "n_threads": n_threads,
        "availability_hours": availability_hours,
        "tls_cert": str(tls_cert) if tls_cert else None,
        "tls_key": str(tls_key) if tls_key else None,
        "registry_public_key": registry_public_key.strip() if registry_public_key else None,
        "allow_http_first_use": True if allow_http_first_use else None,
        "trusted_peers": trusted_peers,
        "stream_interval_s": stream_interval_s,
    }
    try:
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise fail(exc) from exc
    if not cfg.models:
        cfg = replace(cfg, models=[DEFAULT_MODEL])
    try:  # another credential (a user's API key) is said before the node starts and sends it
        if cfg.operator_token:
            named = "--operator-token" if operator_token else f"operator_token in {config}"
            operator_token_checked(cfg.operator_token, named)
        elif settings.operator_token:
            operator_token_checked(settings.operator_token, "LLM_MESH_OPERATOR_TOKEN")
    except MeshError as exc:  # no restart helps: as a token the registry refuses
        fail(exc)
        raise typer.Exit(TOKEN_REFUSED_EXIT) from exc
    if cfg.registry_url and cfg.registry_url != settings.registry_url:
        source = "--registry" if registry else str(config or toml)
        settings = replace(settings, registry_url=cfg.registry_url, registry_source=source)
    try:
        here = local_node_url(cfg.host, cfg.port, bool(cfg.tls_cert)) if cfg.port else None
        with key_in_use(key_path(settings, cfg.key_file), here):  # one node per key
            NodeManager(cfg, settings).run()
    except RegistrationRefused as exc:  # no restart helps: the unit's RestartPreventExitStatus
        fail(exc)
        raise typer.Exit(TOKEN_REFUSED_EXIT) from exc
    except (MeshError, ValueError) as exc:
        raise fail(exc) from exc
    except OSError as exc:  # node.key on a full disk: one line; any other as before (review42c)
        if (line := refusal_of(exc, "the node")) is None:
            raise
        raise fail(OSError(line)) from exc


node_app.add_typer(keys_app, name="keys")
node_app.add_typer(tls_app, name="tls")


# --- models ------------------------------------------------------------------------------

node_app.add_typer(models_app, name="models")


# --- planning ------------------------------------------------------------------------------


@node_app.command("plan")
def node_plan(
    registry: RegistryOpt = None,
    config: Annotated[
        Path | None, typer.Option(help="node.toml (its models count as hosted)")
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Rank catalog models by how well they fit this machine and what the network needs."""
    from rich.markup import escape

    from LLM_Mesh.cli.node_render import plan_table
    from LLM_Mesh.core.plan import SPEED_NOTE, plan_models
    from LLM_Mesh.node.config import load_node_config
    from LLM_Mesh.node.control import first_demand, home_node_target, measured_speeds
    from LLM_Mesh.node.hardware import detect_hardware
    from LLM_Mesh.node.model_files import model_id_of

    settings = settings_from(home, registry)
    path = config_path(settings, config)
    try:
        cfg = load_node_config(path) if config or path.is_file() else None
        mine = cfg is not None and not registry and bool(split_urls(cfg.registry_url or ""))
        # node.toml's registry_ca, unless a CA file was named (found 2026-12-06, review38:
        # the demand of node.toml's https registry failed CERTIFICATE_VERIFY_FAILED); small42:
        settings = with_node_ca(settings, cfg, path, named=not mine)  # its registry's only
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    registry_url = ",".join(
        cfg.effective_registry_urls(settings) if cfg and mine else settings.registry_urls
    )
    source = source_words(str(path) if mine else settings.registry_source)  # said unreachable
    hosted = [model_id_of(m) for m in cfg.models] if cfg else []

    async def demand() -> Any:
        from LLM_Mesh.client import gateway_urls

        async with node_clients.http_client(5.0, settings.registry_ca) as client:
            # the running node's measured speeds, beside the estimate (None: no node
            # answers), asked beside the registry: a silent node holds the plan at most
            # control.MEASURED_READ_S, not that and then the registry's wait (found 2026-12-07)
            (by_model, note), (measured, silent) = await asyncio.gather(
                first_demand(client, gateway_urls(registry_url)),
                measured_speeds(client, *home_node_target(settings, cfg)),
            )
            return by_model, note, measured, silent

    by_model, note, measured, silent = asyncio.run(demand())
    note += f"; {source}" if " is unreachable (" in note else ""  # (cli40b: before, unsaid)
    entries = plan_models(detect_hardware(settings.home), demand=by_model, already_hosted=hosted)
    console.print(plan_table(entries, console.width, measured))
    console.print(f"[dim]{escape(SPEED_NOTE)}[/]")
    if silent:
        console.print(f"[yellow]{escape(silent)}[/]")
    console.print(("[yellow]" if by_model is None else "[green]") + note + "[/]")


# --- controlling the running node (cli/node_control_commands.py) ------------------------------

node_app.command("pause")(node_pause)
node_app.command("resume")(node_resume)
node_app.command("drain")(node_drain)
node_app.command("info")(node_info_cmd)
node_app.command("earnings", hidden=True, context_settings={"ignore_unknown_options": True})(
    node_earnings_cmd
)
