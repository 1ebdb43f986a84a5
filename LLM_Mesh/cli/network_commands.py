"""``llm-mesh ask``, ``status``, ``models`` and ``balance``: using the network through a
registry's gateway."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.deferred import ca, fail, registry_settings, replica_memory, warn_plain_http
from LLM_Mesh.cli.options import HomeOpt, RegistryCaOpt, RegistryOpt, console, err
from LLM_Mesh.errors import MeshError

__all__ = ["ask", "balance", "models", "status"]


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
        raise fail(ValueError(f"--task: {problem}"))
    if save is not None and no_save:
        raise fail(ValueError("--save DIR and --no-save: give one"))
    settings = registry_settings(home, registry, api_key=api_key, registry_ca=ca(registry_ca))
    try:  # to LLM_MESH_MAX_BODY_BYTES, the gateway's body limit (found 2026-12-06, cli36)
        text = read_prompt(prompt, prompt_file, sys.stdin, settings.limits.max_body_bytes)
    except PromptInputError as exc:
        raise fail(exc) from exc
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
        raise fail(said, settings) from exc
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
        raise fail(ValueError("--save: the answer carries no receipt; nothing was saved"))
    try:
        path = save_receipt(save, kept)
    except OSError as exc:
        raise fail(OSError(f"--save: the receipt was not saved ({exc})")) from exc
    err.print(Text(f"receipt saved: {path}", style="dim"), soft_wrap=True)


def _regions(avoid: str | None) -> dict[str, Any]:
    """``ask --avoid``'s list as the API's ``avoid_regions`` and ``strict_regions``."""
    names = [r.strip() for r in (avoid or "").split(",") if r.strip()]
    strict = any(r.casefold() == "unknown" for r in names)
    regions = [r for r in names if r.casefold() != "unknown"]
    return {"avoid_regions": regions, "strict_regions": strict}


def status(
    registry: RegistryOpt = None, registry_ca: RegistryCaOpt = None, home: HomeOpt = None
) -> None:
    """The network at a glance: models, nodes, health, load, latency."""
    from LLM_Mesh.cli import render
    from LLM_Mesh.distributed_models import DistributedModelRegistry

    settings = registry_settings(home, registry, registry_ca=ca(registry_ca))
    reg = DistributedModelRegistry(settings, replica_memory=replica_memory(settings))
    try:
        info = reg.get_model_info()
    except MeshError as exc:
        raise fail(exc, settings) from exc
    render.print_status(info, reg._nodes or [], console, answered=reg._answered)


def models(
    registry: RegistryOpt = None, registry_ca: RegistryCaOpt = None, home: HomeOpt = None
) -> None:
    """The catalog, and which models are up."""
    from LLM_Mesh.bounded_http import rows
    from LLM_Mesh.cli import render
    from LLM_Mesh.client import fetch_json_sync

    settings = registry_settings(home, registry, registry_ca=ca(registry_ca))
    try:
        found = fetch_json_sync(
            settings.registry_urls, "/mesh/models", ca_file=settings.registry_ca,
            read=rows("models", "id"), memory=replica_memory(settings),
        )  # fmt: skip
    except MeshError as exc:
        raise fail(exc, settings) from exc
    console.print(render.models_table(found, console.width))


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

    settings = registry_settings(home, registry, api_key=api_key, registry_ca=ca(registry_ca))
    if settings.api_key:
        warn_plain_http(settings.registry_urls, "your API key")

    async def go() -> dict[str, Any]:
        async with keyed_client(settings) as client:
            return await client.balance()

    try:
        data = asyncio.run(go())
    except MeshError as exc:
        raise fail(exc, settings) from exc
    console.print(render.balance_table(data))
