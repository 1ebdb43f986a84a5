"""The ``llm-mesh`` command: parse, build settings, call. No logic lives here.

llm-mesh up | demo                 the local network (registry + one node)
llm-mesh registry serve            the registry + gateway
llm-mesh node start                a node
llm-mesh ask PROMPT                ask the network
llm-mesh status | models           what is up
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from LLM_Mesh.cli import render
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT, DEFAULT_REGISTRY_PORT, Settings
from LLM_Mesh.errors import MeshError

app = typer.Typer(
    help="Free-S_Code LLM Mesh: models hosted by community nodes.", no_args_is_help=True
)
registry_app = typer.Typer(help="Run the registry + gateway.", no_args_is_help=True)
node_app = typer.Typer(help="Run and manage a hosting node.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(node_app, name="node")

console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="State directory [env LLM_MESH_HOME, default ~/.llm-mesh]"),
]
RegistryOpt = Annotated[
    str | None, typer.Option("--registry", help="Registry URL [env LLM_MESH_REGISTRY_URL]")
]


def _settings(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    return Settings.from_env(
        home=home, registry_url=registry.rstrip("/") if registry else None, **kw
    )


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # one line per heartbeat is noise; the mesh's own loggers say what matters
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(1)


# --- the local network -------------------------------------------------------------------


@app.command()
def up(
    model: Annotated[str, typer.Option(help="Model the local node serves")] = DEFAULT_MODEL,
    engine: Annotated[str, typer.Option(help="llama-cpp | openai | sim")] = "llama-cpp",
    registry_port: int = DEFAULT_REGISTRY_PORT,
    node_port: int = DEFAULT_NODE_PORT,
    home: HomeOpt = None,
) -> None:
    """Start a registry+gateway and one node; run until Ctrl-C or SIGTERM."""
    from LLM_Mesh.local_mesh import LocalMesh

    settings = _settings(home)
    mesh = LocalMesh(
        settings, model=model, engine=engine, registry_port=registry_port, node_port=node_port
    )
    stop = False

    def _on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        with console.status("starting the local mesh") as st:
            mesh.start(progress=lambda m: st.update(m))
        console.print(
            f"[green]LLM Mesh is up.[/] Gateway (OpenAI API): {mesh.registry_url}/v1 · node: {mesh.node_url} · "
            f'logs: {settings.home / "logs"}\nTry: llm-mesh ask "def fibonacci(n):" --model {model}\n'
            "Ctrl-C stops it."
        )
        while not stop and mesh.alive():
            time.sleep(0.2)
        if not stop:
            err.print(f"[red]a mesh process exited unexpectedly; see {settings.home / 'logs'}[/]")
            raise typer.Exit(1)
    except MeshError as exc:
        raise _fail(exc) from exc
    finally:
        console.print("stopping the local mesh…")
        mesh.stop()
    console.print("stopped.")


@app.command()
def demo(
    model: Annotated[str, typer.Option(help="Model the local node serves")] = DEFAULT_MODEL,
    engine: Annotated[str, typer.Option(help="llama-cpp | openai | sim")] = "llama-cpp",
    prompt: Annotated[
        str, typer.Option(help="The request sent through the network")
    ] = "def fibonacci(n):",
    task: Annotated[str, typer.Option(help="Task type of the request")] = "python",
    max_tokens: int = 96,
    registry_port: int = DEFAULT_REGISTRY_PORT,
    node_port: int = DEFAULT_NODE_PORT,
    home: HomeOpt = None,
) -> None:
    """Start the local network, send the seed's request through it, print the answer, stop."""
    from LLM_Mesh.cli.demo import run_demo
    from LLM_Mesh.local_mesh import LocalMesh

    settings = _settings(home)
    mesh = LocalMesh(
        settings, model=model, engine=engine, registry_port=registry_port, node_port=node_port
    )
    try:
        with console.status("starting the local mesh") as st:
            mesh.start(progress=lambda m: st.update(m))
        console.print(
            f"[green]mesh up[/]: gateway {mesh.registry_url}/v1, node {mesh.node_url} ({engine})"
        )
        asyncio.run(run_demo(console, mesh.registry_url, model, prompt, task, max_tokens))
    except MeshError as exc:
        raise _fail(exc) from exc
    finally:
        with console.status("stopping the local mesh"):
            mesh.stop()
    console.print("[green]demo done[/]: everything stopped cleanly.")


# --- the parts -----------------------------------------------------------------------------


@registry_app.command("serve")
def registry_serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_REGISTRY_PORT,
    database_url: Annotated[
        str | None, typer.Option(help="[env LLM_MESH_DATABASE_URL, default SQLite in home]")
    ] = None,
    home: HomeOpt = None,
    verbose: bool = False,
) -> None:
    """Run the registry + gateway (OpenAI API under /v1)."""
    from LLM_Mesh.registry.app import serve

    _setup_logging(verbose)
    settings = _settings(home, database_url=database_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    serve(settings, host=host, port=port)


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

    _setup_logging(verbose)
    settings = _settings(home, registry)
    try:
        cfg = load_node_config(config) if config else NodeConfig(registry_url=settings.registry_url)
    except (OSError, ValueError) as exc:
        raise _fail(exc) from exc
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
        raise _fail(exc) from exc


# --- using the network -----------------------------------------------------------------------


@app.command()
def ask(
    prompt: str,
    model: Annotated[
        str | None, typer.Option(help="Model id; default: the best up for --task")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task type (python, debug, code, chat, ...)")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream tokens as they come")] = False,
    chat: Annotated[
        bool, typer.Option(help="Send as a chat message (default: raw completion)")
    ] = False,
    max_tokens: int = 128,
    temperature: float | None = None,
    fallback: Annotated[
        bool, typer.Option(help="Use another model of the same specialty if this one is down")
    ] = False,
    registry: RegistryOpt = None,
) -> None:
    """Ask the network; prints the answer and who served it, how fast, at what cost."""
    from LLM_Mesh.cli.demo import ask_once

    settings = _settings(registry=registry)
    try:
        asyncio.run(
            ask_once(
                console, settings.registry_url, prompt, model=model, task=task, stream=stream, chat=chat,
                max_tokens=max_tokens, temperature=temperature, fallback=fallback,
            )
        )  # fmt: skip
    except MeshError as exc:
        raise _fail(exc) from exc


@app.command()
def status(registry: RegistryOpt = None) -> None:
    """The network at a glance: models, nodes, health, load, latency."""
    from LLM_Mesh.distributed_models import DistributedModelRegistry

    reg = DistributedModelRegistry(_settings(registry=registry))
    try:
        info = reg.get_model_info()
    except MeshError as exc:
        raise _fail(exc) from exc
    render.print_status(info, reg._nodes or [], console)


@app.command()
def models(registry: RegistryOpt = None) -> None:
    """The catalog, and which models are up."""
    from LLM_Mesh.client import fetch_json_sync

    settings = _settings(registry=registry)
    try:
        data = fetch_json_sync(settings.registry_url, "/mesh/models")
    except MeshError as exc:
        raise _fail(exc) from exc
    console.print(render.models_table(data["models"]))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
