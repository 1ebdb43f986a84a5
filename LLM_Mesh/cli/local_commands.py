"""``llm-mesh up`` and ``llm-mesh demo``: the local network, a registry+gateway and one
node on this machine (``local_mesh.py``), run until stopped, or for one request."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.deferred import fail, settings_from
from LLM_Mesh.cli.options import EngineOpt, HomeOpt, console, err
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT, DEFAULT_REGISTRY_PORT
from LLM_Mesh.errors import MeshError

__all__ = ["demo", "up"]


def up(
    model: Annotated[str, typer.Option(help="Model the local node serves")] = DEFAULT_MODEL,
    engine: EngineOpt = "llama-cpp",
    registry_port: int = DEFAULT_REGISTRY_PORT,
    node_port: int = DEFAULT_NODE_PORT,
    home: HomeOpt = None,
    anonymous_rpm: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Requests a minute per address without an API key (default 0: no limit)",
        ),
    ] = 0,
    allow_local_nodes: Annotated[
        bool,
        typer.Option(
            "--allow-local-nodes",
            help="Let other nodes on this machine join (./setup-node-operator.sh, node start): "
            "the registry accepts node URLs on loopback (127.0.0.0/8, ::1), never a LAN, "
            "link-local/metadata or other private address. Off by default: with it, any local "
            "program holding an operator token can have the gateway call another service on "
            "this machine's loopback. Both processes listen on 127.0.0.1 only",
        ),
    ] = False,
) -> None:
    """Start a registry+gateway and one node; run until Ctrl-C or SIGTERM."""
    from LLM_Mesh.cli.common import ensure_home, try_line
    from LLM_Mesh.local_mesh import LocalMesh

    settings = settings_from(home)
    ensure_home(settings.home)
    mesh = LocalMesh(
        settings, model=model, engine=engine, registry_port=registry_port, node_port=node_port,
        anonymous_rpm=anonymous_rpm or None, allow_local_nodes=allow_local_nodes,
    )  # fmt: skip
    stop = False
    starting = True
    stopping = False

    def _on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        if stopping:  # the children's stop is bounded (local_mesh.py): it goes on
            _already_stopping(signum, mesh)
            return
        stop = True
        if starting:  # interrupt the start-up wait (a cold model load can take minutes)
            raise KeyboardInterrupt

    _catch_stop_signals(_on_signal)
    try:
        with console.status("starting the local mesh") as st:
            mesh.start(progress=lambda m: st.update(m))
        starting = False
        sim = " [yellow](SIMULATED engine: made-up answers)[/]" if engine == "sim" else ""
        hint = _local_nodes_hint(mesh.registry_url, settings.home, (registry_port, node_port))
        console.print(
            f"[green]LLM Mesh is up.[/] Gateway (OpenAI API): {mesh.registry_url}/v1 · node: {mesh.node_url}{sim} · "
            f"logs: {settings.home / 'logs'}\nDashboard: {mesh.dashboard_url}\n"
            + try_line(model, mesh.registry_url, settings.registry_urls)
            + (hint if allow_local_nodes else "")
            + "Ctrl-C stops it.",
            soft_wrap=True,  # URLs and the command to try whole on their lines (to copy)
        )
        while not stop and mesh.alive():
            mesh.rotate_logs()  # the children's log files stay bounded
            time.sleep(0.2)
        if not stop:
            err.print(f"[red]a mesh process exited unexpectedly; see {settings.home / 'logs'}[/]")
            raise typer.Exit(1)
    except KeyboardInterrupt:
        starting = False
        console.print("interrupted while starting.")
    except MeshError as exc:
        raise fail(exc) from exc
    finally:
        starting = False
        stopping = True
        if mesh.started:  # else nothing runs: a failed start stopped what it had started
            console.print("stopping the local mesh…")
        mesh.stop()
    console.print("stopped.")


def _catch_stop_signals(handler: Any) -> None:
    """SIGTERM and SIGINT to ``handler``, where Python allows it: in the main thread (a
    command invoked from another thread, as a test may, keeps the handlers it has)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _already_stopping(signum: int, mesh: Any) -> None:
    """A signal while ``up`` or ``demo`` stops its children: the stop goes on, bounded."""
    err.print(
        f"{signal.Signals(signum).name} again: already stopping (the node within "
        f"{mesh.stop_grace_s('node'):.0f} s, the registry within "
        f"{mesh.stop_grace_s('registry'):.0f} s)"
    )


def _local_nodes_hint(registry_url: str, home: Path, taken: tuple[int, int]) -> str:
    """How another node on this machine joins an ``up --allow-local-nodes`` mesh, on a port
    above ``taken`` (the mesh's: found 2026-12-07, newuser44: 8802 whatever they were)."""
    port = max(taken) + 1 if max(taken) < 65535 else min(taken) - 1
    return (
        "Other nodes on this machine may join (loopback URLs only), each with its own home "
        f"and an operator token (llm-mesh registry operators add NAME --home {home}), e.g.\n"
        "  LLM_MESH_HOME=~/.llm-mesh-node2 LLM_MESH_OPERATOR_TOKEN=lmo_... "
        f"./setup-node-operator.sh --registry {registry_url} --port {port}\n"
    )


def demo(
    model: Annotated[str, typer.Option(help="Model the local node serves")] = DEFAULT_MODEL,
    engine: EngineOpt = "llama-cpp",
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
    import asyncio

    from LLM_Mesh.cli.common import ensure_home
    from LLM_Mesh.cli.demo import run_demo
    from LLM_Mesh.core.tasks import unknown_task
    from LLM_Mesh.local_mesh import LocalMesh

    problem = unknown_task(task)  # said before the mesh starts
    if problem is not None:
        raise fail(ValueError(f"--task: {problem}"))
    settings = settings_from(home)
    ensure_home(settings.home)
    mesh = LocalMesh(
        settings, model=model, engine=engine, registry_port=registry_port, node_port=node_port,
        command="demo",
    )  # fmt: skip
    stopping = False
    signalled: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        if stopping:
            _already_stopping(signum, mesh)
            return
        # SIGTERM too: the `finally` below stops the children (in sessions of their own:
        signalled.append(signum)  # nothing else would), bounded (local_mesh.py)
        raise KeyboardInterrupt

    _catch_stop_signals(_on_signal)
    try:
        with console.status("starting the local mesh") as st:
            mesh.start(progress=lambda m: st.update(m))
        kind = "[yellow]SIMULATED engine: made-up answers[/]" if engine == "sim" else engine
        console.print(
            f"[green]mesh up[/]: gateway {mesh.registry_url}/v1, node {mesh.node_url} ({kind}); "
            f"dashboard (while the demo runs): {mesh.dashboard_url}",
            soft_wrap=True,
        )
        asyncio.run(
            run_demo(
                console, mesh.registry_url, model, prompt, task, max_tokens, settings.stream_max_s
            )
        )
    except KeyboardInterrupt:
        pass
    except MeshError as exc:
        raise fail(exc) from exc
    finally:
        stopping = True
        with console.status("stopping the local mesh"):
            mesh.stop()
    if signalled:  # 128 + the signal, as a shell says a command killed by it
        err.print(f"interrupted ({signal.Signals(signalled[0]).name}): the local mesh stopped.")
        raise typer.Exit(128 + signalled[0])
    console.print("[green]demo done[/]: everything stopped cleanly.")
