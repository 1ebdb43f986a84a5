"""The ``llm-mesh`` command: parse, build settings, call. No logic lives here.

llm-mesh up | demo                 the local network (registry + one node)
llm-mesh registry serve            the registry + gateway
llm-mesh registry operators|nodes  admin: operator credentials, revocation
llm-mesh registry grant ACCOUNT N  admin: N micro-NetworkTokens from the mint (a ledger entry)
llm-mesh ledger verify             check the public ledger (hashes, signatures, balances)
llm-mesh receipt verify FILE|-     check an answer's signed receipt offline
llm-mesh earnings                  an operator's earnings (per day, model, node) and balance
llm-mesh registry keys             admin: client API keys (limits, priority, regions)
llm-mesh registry public-key       the gateway's key, for nodes to pin (registry_public_key)
llm-mesh node start                a node
llm-mesh ask PROMPT                ask the network
llm-mesh status | models           what is up
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from LLM_Mesh import error_pipe
from LLM_Mesh.cli.lazy_group import LazyGroup
from LLM_Mesh.cli.options import (
    EngineOpt,
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    err,
    reflow_help,
    version_callback,
)
from LLM_Mesh.cli.subcommands import SUMMARIES
from LLM_Mesh.config import DEFAULT_MODEL, DEFAULT_NODE_PORT, DEFAULT_REGISTRY_PORT
from LLM_Mesh.errors import MeshError

if TYPE_CHECKING:
    from LLM_Mesh.client_replicas import ReplicaMemory
    from LLM_Mesh.config import Settings


class _Commands(LazyGroup):
    """The subcommands with modules of their own load when named: ``--version``, ``ask``,
    ``status`` import none of them (found 2026-12-06, speed36)."""

    lazy: ClassVar[dict[str, str]] = {
        name: f"LLM_Mesh.cli.subcommands:{name}"
        for name in ("earnings", "registry", "node", "ledger", "receipt")
    }
    summaries = SUMMARIES  # what ``--help`` lists for each, loading none (cli37)
    # ``--help``'s order as it was when all were registered here
    order = ("earnings", "up", "demo", "ask", "status", "models", "balance", "simulate",
             "migrate", "registry", "node", "ledger", "receipt")  # fmt: skip


def _fail(exc: Exception, settings: Settings | None = None) -> typer.Exit:
    """``fail``; with ``settings``, a registry that did not answer says where its URL came from."""
    from LLM_Mesh.cli.common import fail, registry_said

    return fail(registry_said(exc, settings))


def _settings(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    from LLM_Mesh.cli.common import settings_from

    return settings_from(home, registry, **kw)


def _registry_settings(home: Path | None, registry: str | None, **kw: Any) -> Settings:
    """:func:`_settings` for a command that reaches a registry: node.toml's registry_ca too."""
    from LLM_Mesh.cli.common import registry_settings

    return registry_settings(home, registry, **kw)


def replica_memory(settings: Settings) -> ReplicaMemory:
    from LLM_Mesh.cli.common import replica_memory as memory

    return memory(settings)


def warn_plain_http(urls: tuple[str, ...], what: str) -> None:
    from LLM_Mesh.cli.common import warn_plain_http as warn

    warn(urls, what)


app = typer.Typer(
    help="Free-S_Code LLM Mesh: models hosted by community nodes.",
    no_args_is_help=True,
    cls=_Commands,
)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Free-S_Code LLM Mesh: models hosted by community nodes."""


# --- the local network -------------------------------------------------------------------


@app.command()
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

    settings = _settings(home)
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
        raise _fail(exc) from exc
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


@app.command()
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
        raise _fail(ValueError(f"--task: {problem}"))
    settings = _settings(home)
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
        raise _fail(exc) from exc
    finally:
        stopping = True
        with console.status("stopping the local mesh"):
            mesh.stop()
    if signalled:  # 128 + the signal, as a shell says a command killed by it
        err.print(f"interrupted ({signal.Signals(signalled[0]).name}): the local mesh stopped.")
        raise typer.Exit(128 + signalled[0])
    console.print("[green]demo done[/]: everything stopped cleanly.")


# --- the parts -----------------------------------------------------------------------------


# --- using the network -----------------------------------------------------------------------


def _ca(path: Path | None) -> str | None:
    return str(path.expanduser()) if path else None


@app.command()
def ask(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="The prompt: text to continue, or with --chat a message; '-' (or none, with "
            "stdin not a terminal): read from stdin, kept out of shell history and `ps`",
            show_default=False,
        ),
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option(
            "--prompt-file",
            help="Read the prompt from this file (kept out of shell history and `ps`); it and "
            "stdin are read to the gateway's body limit at most (1 MiB by default; to raise it, "
            "see `ask` in the README)",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model id; default: the best up for --task")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task type (python, debug, code, chat, ...)")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream tokens as they come")] = False,
    chat: Annotated[
        bool, typer.Option(help="Send the prompt as a chat message (else: a raw completion)")
    ] = False,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate")] = 128,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (unset: the server's default)")
    ] = None,
    fallback: Annotated[
        bool,
        typer.Option(
            help="Use another model of the same specialty if this one is down (with --stream: "
            "only while none of the answer is printed)"
        ),
    ] = False,
    avoid_regions: Annotated[
        str | None,
        typer.Option(
            "--avoid",
            metavar="LIST",
            help="Regions never to route to, e.g. eu,us (eu also covers eu-west, ...); "
            "'unknown' in it: nor a node that declared no region",
        ),
    ] = None,
    allow_prompt_keeping: Annotated[
        bool,
        typer.Option(
            "--allow-keep",
            help="Also route to nodes that may keep prompts (keeps_no_prompts false in "
            "their registration, e.g. an openai-engine node, or undeclared); held out by "
            "default. Without it a prompt goes only to nodes whose operator declared that "
            "they keep none: the operator's word, which the mesh cannot check",
        ),
    ] = False,
    registry: RegistryOpt = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="API key to send \\[env LLM_MESH_API_KEY; default: none, anonymous]"
        ),
    ] = None,
    registry_ca: RegistryCaOpt = None,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            metavar="DIR",
            help="Keep the answer's receipt (no prompt, no text) in a new file of DIR (made "
            "0700), for `ledger statement --receipts DIR` and `receipt verify FILE` "
            "(with an API key it is kept by default: see --no-save)",
        ),
    ] = None,
    no_save: Annotated[
        bool,
        typer.Option(
            "--no-save",
            help="With an API key, keep no receipt (default: each is kept, no prompt, no "
            "text, in the key's folder of the home's receipts/, which `ledger statement` "
            "reads; without a key nothing is kept)",
        ),
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Ask the network; prints the answer and who served it, how fast, at what cost."""
    import asyncio

    from rich.text import Text

    from LLM_Mesh.cli.demo import ask_once, flag_named, rerun_named
    from LLM_Mesh.cli.prompt_input import PromptInputError, read_prompt, refused_as_too_large
    from LLM_Mesh.core.tasks import unknown_task
    from LLM_Mesh.receipt_files import kept_note, key_folder, save_receipt

    problem = unknown_task(task)
    if problem is not None:
        raise _fail(ValueError(f"--task: {problem}"))
    if save is not None and no_save:
        raise _fail(ValueError("--save DIR and --no-save: give one"))
    settings = _registry_settings(home, registry, api_key=api_key, registry_ca=_ca(registry_ca))
    try:  # to LLM_MESH_MAX_BODY_BYTES, the gateway's body limit (found 2026-12-06, cli36)
        text = read_prompt(prompt, prompt_file, sys.stdin, settings.limits.max_body_bytes)
    except PromptInputError as exc:
        raise _fail(exc) from exc
    # a keyed user's receipts are kept by default (found 2026-12-05: without --save, each
    # charge was NO RECEIPT in the statement); an anonymous answer's never (privacy)
    mine = None if no_save or not settings.api_key else key_folder(settings.home, settings.api_key)
    if settings.api_key:
        warn_plain_http(settings.registry_urls, "your API key")
    try:
        kept = asyncio.run(
            ask_once(
                console, ",".join(settings.registry_urls), text, model=model, task=task, stream=stream, chat=chat,
                max_tokens=max_tokens, temperature=temperature, fallback=fallback,
                api_key=settings.api_key,
                settings=settings, replica_memory=replica_memory(settings),
                allow_prompt_keeping=allow_prompt_keeping, **_regions(avoid_regions),
            )
        )  # fmt: skip
    except MeshError as exc:
        said = refused_as_too_large(
            rerun_named(flag_named(exc, max_tokens)), settings.limits.max_body_bytes
        )
        raise _fail(said, settings) from exc
    if save is None:
        if mine is not None and kept is not None:
            try:
                save_receipt(mine, kept)
            except OSError as exc:  # the answer printed above stands, and the exit status
                err.print(Text(f"warning: the receipt was not kept in {mine} ({exc}): "
                               "`ledger statement` will show this charge as NO RECEIPT"),
                          soft_wrap=True)  # fmt: skip
                return
            # found 2026-12-05: a user who never ran a statement grew the folder unsaid
            line = kept_note(mine)
            if line is not None:
                err.print(Text(line, style="yellow"), soft_wrap=True)
        return
    if kept is None:  # the answer printed above stands
        raise _fail(ValueError("--save: the answer carries no receipt; nothing was saved"))
    try:
        path = save_receipt(save, kept)
    except OSError as exc:
        raise _fail(OSError(f"--save: the receipt was not saved ({exc})")) from exc
    err.print(Text(f"receipt saved: {path}", style="dim"), soft_wrap=True)


def _regions(avoid: str | None) -> dict[str, Any]:
    """``ask --avoid``'s list as the API's ``avoid_regions`` and ``strict_regions``."""
    names = [r.strip() for r in (avoid or "").split(",") if r.strip()]
    strict = any(r.casefold() == "unknown" for r in names)
    regions = [r for r in names if r.casefold() != "unknown"]
    return {"avoid_regions": regions, "strict_regions": strict}


@app.command()
def status(
    registry: RegistryOpt = None, registry_ca: RegistryCaOpt = None, home: HomeOpt = None
) -> None:
    """The network at a glance: models, nodes, health, load, latency."""
    from LLM_Mesh.cli import render
    from LLM_Mesh.distributed_models import DistributedModelRegistry

    settings = _registry_settings(home, registry, registry_ca=_ca(registry_ca))
    reg = DistributedModelRegistry(settings, replica_memory=replica_memory(settings))
    try:
        info = reg.get_model_info()
    except MeshError as exc:
        raise _fail(exc, settings) from exc
    render.print_status(info, reg._nodes or [], console, answered=reg._answered)


@app.command()
def models(
    registry: RegistryOpt = None, registry_ca: RegistryCaOpt = None, home: HomeOpt = None
) -> None:
    """The catalog, and which models are up."""
    from LLM_Mesh.bounded_http import rows
    from LLM_Mesh.cli import render
    from LLM_Mesh.client import fetch_json_sync

    settings = _registry_settings(home, registry, registry_ca=_ca(registry_ca))
    try:
        found = fetch_json_sync(
            settings.registry_urls, "/mesh/models", ca_file=settings.registry_ca,
            read=rows("models", "id"), memory=replica_memory(settings),
        )  # fmt: skip
    except MeshError as exc:
        raise _fail(exc, settings) from exc
    console.print(render.models_table(found, console.width))


@app.command()
def balance(
    registry: RegistryOpt = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Your API key \\[env LLM_MESH_API_KEY; none: the community pool's balance]",
        ),
    ] = None,
    registry_ca: RegistryCaOpt = None,
    home: HomeOpt = None,
) -> None:
    """What your API key may spend (µNT): balance; reserved (requests in flight, answers not
    settled yet, the gateways' reservation leases: an unused one goes back within a second
    or two); available = balance - reserved."""
    import asyncio

    from LLM_Mesh.cli import render
    from LLM_Mesh.cli.common import keyed_client

    settings = _registry_settings(home, registry, api_key=api_key, registry_ca=_ca(registry_ca))
    if settings.api_key:
        warn_plain_http(settings.registry_urls, "your API key")

    async def go() -> dict[str, Any]:
        async with keyed_client(settings) as client:
            return await client.balance()

    try:
        data = asyncio.run(go())
    except MeshError as exc:
        raise _fail(exc, settings) from exc
    console.print(render.balance_table(data))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulate(ctx: typer.Context) -> None:
    """Fleet simulator: the real routing code vs simple strategies on a virtual clock.

    Options: --scenario slow-node|mixed-speeds|mass-kill|keyed-rush (repeatable),
    --strategy random|round-robin|least-loaded|ours (repeatable), --seed N, --include-slow,
    --keyed-share 0..1 (requests with an API key), --anonymous-share 0..1 (slots
    anonymous requests may hold; default 0.75), --keyed-wait S (keyed requests wait at the
    gateway for a slot; default 0). Prints one table once every run ends
    ("sim ... ms": virtual-clock time, not measured), a block a run where the terminal is
    too narrow for it; with classes (keyed-rush, --keyed-share) a table per class too.
    """
    from LLM_Mesh.cli.simulate_render import run_simulate

    raise typer.Exit(run_simulate(list(ctx.args), console))


@app.command()
def migrate(
    path: Annotated[Path, typer.Argument(help="Tree to clean [.]")] = Path("."),
    apply: Annotated[bool, typer.Option("--apply", help="Remove the model files found")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Check that none remain")] = False,
) -> None:
    """Find local model files (by their GGUF/GGML magic, not their name); --apply removes them."""
    from LLM_Mesh import migrate as mig

    try:
        if verify:
            res = mig.verify(path)
            for line in mig.render_verify(res):
                console.print(line, markup=False, highlight=False)
            raise typer.Exit(0 if res.ok else 1)
        plan = mig.scan(path)
        lines = mig.render_apply(plan, mig.apply(plan)) if apply else mig.render_plan(plan)
        for line in lines:
            console.print(line, markup=False, highlight=False)
    except MeshError as exc:
        raise _fail(exc) from exc


reflow_help(app)  # every command is registered by now


def main() -> None:
    error_pipe.take_from(os.environ)  # ``up``'s child: its one-line error goes there too
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
