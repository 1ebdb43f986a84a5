"""Quality control, admin: ``registry nodes trust|untrust|clear`` and ``registry canary run``.

llm-mesh registry nodes trust NODE_ID      the node becomes a canary verifier (its answers
                                           are the references for its model files)
llm-mesh registry nodes untrust NODE_ID    the node is a canary verifier no more (cli42:
                                           before, only revoking its key undid trust)
llm-mesh registry nodes clear NODE_ID      lift the node's quarantines (it routes again)
                                           and release its held earnings to its operator
llm-mesh registry canary run [--node ID] [--model M]
                                           probe now (the running registry, admin key) and
                                           print each verdict

``trust``, ``untrust`` and ``clear`` act on the store (like ``nodes revoke``): running
registries learn them within a second. ``canary run`` asks the running registry
(``POST /mesh/canary/run``), which sends the probes as it forwards requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.admin_commands import DbOpt, _settings, nodes_app, with_admin_store
from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    err,
    fail,
    registry_said,
    registry_settings,
    replica_memory,
    warn_plain_http,
)
from LLM_Mesh.cli.render import fitted_table, shown
from LLM_Mesh.errors import MeshError

canary_app = typer.Typer(help="Canary probes: is each node running what it claims?")


@nodes_app.command("trust")
def nodes_trust(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Mark a node as a canary verifier: its answers are the references for its model files."""
    at = datetime.now(timezone.utc)
    added = with_admin_store(_settings(home, database_url), lambda s: s.trust_verifier(node_id, at))
    console.print(f"node {shown(node_id)} {'is now' if added else 'was already'} a canary verifier")


@nodes_app.command("untrust")
def nodes_untrust(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Unmark a canary verifier (`registry nodes trust`): its answers are no longer the
    references for its model files; the node itself stays registered and routed."""
    removed = with_admin_store(_settings(home, database_url), lambda s: s.untrust_verifier(node_id))
    console.print(
        f"node {shown(node_id)} {'is no longer' if removed else 'was not'} a canary verifier"
    )


@nodes_app.command("clear")
def nodes_clear(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Lift a node's quarantines (a failed canary): it is routed again for those models, and
    the earnings held since its first failed probe, its own and those of its operator's other
    nodes, are paid to its operator once none of the operator's nodes is quarantined."""
    from LLM_Mesh.registry.held import clear_and_release

    at = datetime.now(timezone.utc)

    async def clear(s: Any) -> tuple[list[str], int, str, list[str]]:
        models, released, to = await clear_and_release(s, node_id, at)
        key = await s.get_node_key(node_id)
        still = [] if key is None else await s.quarantined_nodes_of(key.operator)
        return models, released, to, still

    models, released, to, still = with_admin_store(_settings(home, database_url), clear)
    if not models:
        console.print(f"node {shown(node_id)} was not quarantined")
    else:
        console.print(f"node {shown(node_id)} cleared for: {shown(', '.join(models))}")
    if released:
        console.print(
            f"released {released} µNT of held earnings to {shown(to)} (ledger entry: release)"
        )
    if still:
        console.print(
            f"its operator still has quarantined nodes ({', '.join(still)}): every node of "
            "that operator stays held, nothing is released until the last one is cleared",
            markup=False,
        )


@canary_app.command("run")
def canary_run(
    node: Annotated[str | None, typer.Option(help="Only this node id")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    registry: RegistryOpt = None,
    registry_ca: RegistryCaOpt = None,
    home: HomeOpt = None,
) -> None:
    """Probe nodes now and print each verdict (pass, fail, unverified, error; SIMULATED: the
    node serves the model on the simulated engine, its answers made up)."""
    from LLM_Mesh.client import MeshClient
    from LLM_Mesh.plain_http import PlainHttpNotice
    from LLM_Mesh.secret_files import admin_key_for, admin_key_missing

    # the CA: --registry-ca, else $LLM_MESH_REGISTRY_CA, else node.toml's (found 2026-12-06,
    # ratelimit38: $LLM_MESH_REGISTRY_CA only, unlike every other command reaching a registry)
    ca = str(registry_ca.expanduser()) if registry_ca else None
    settings = registry_settings(home, registry, registry_ca=ca)
    # the home's admin.key only to its own registry, once it proved it holds the recorded
    # registry key (admin_proof.py); another needs LLM_MESH_ADMIN_KEY
    admin = admin_key_for(settings, settings.registry_urls)
    if admin is None:
        err.print(f"error: {admin_key_missing(settings.registry_urls)}", markup=False)
        raise typer.Exit(1)
    # said on stderr as for an API key or operator token (found 2026-12-05: only the
    # client's log line, shown by Python's last-resort handler, lost under any logging set up)
    warn_plain_http(settings.registry_urls, "the admin key")

    async def go() -> list[dict[str, object]]:
        async with MeshClient(
            settings.registry_urls, admin_key=admin.key, admin_registry_key=admin.registry_key,
            ca_file=settings.registry_ca, memory=replica_memory(settings),
            notice=PlainHttpNotice((), quiet=True),  # said above (warn_plain_http)
        ) as c:  # fmt: skip
            return await c.canary_run(node, model)

    try:
        results = asyncio.run(go())
    except MeshError as exc:  # a registry that did not answer: where its URL came from too
        raise fail(registry_said(exc, settings)) from exc
    if not results:
        console.print("nothing to probe (no healthy node hosts a model that is not quarantined)")
        return
    rows, failed = canary_rows(results)
    console.print(
        fitted_table(CANARY_COLUMNS, rows, keys={"node", "model", "verifier"}, width=console.width)
    )
    if failed:
        raise typer.Exit(1)


CANARY_COLUMNS = ("node", "model", "verdict", "detail", "verifier")
_VERDICT_STYLE = {"pass": "green", "fail": "red", "error": "yellow"}


def canary_rows(results: Sequence[Any]) -> tuple[list[list[str]], bool]:
    """The registry's verdicts as table rows (markup: the registry's words printed literally,
    through ``shown``) and whether any failed; a simulated node's verdict says SIMULATED. An odd answer (a field missing, None, a
    number, an object) is printed as ``-`` or its text, never a traceback (found
    2026-12-04: ``[red]x[/red]`` in a model name was read as markup, and an answer
    without ``verdict`` ended ``canary run`` with a KeyError)."""
    rows: list[list[str]] = []
    failed = False
    for r in results:
        if not isinstance(r, Mapping):
            rows.append(["-", "-", "?", shown(r), "-"])
            continue
        verdict = r.get("verdict")
        text = "-" if verdict is None else shown(verdict)
        failed = failed or verdict == "fail"
        style = _VERDICT_STYLE.get(verdict) if isinstance(verdict, str) else None
        cell = f"[{style}]{text}[/]" if style else text
        if r.get("quarantined") is True:
            cell += " (quarantined)"
        if r.get("simulated") is True:  # the node's engine is simulated: made-up answers
            cell += " [yellow](SIMULATED)[/]"

        def field(key: str, row: Mapping[str, Any] = r) -> str:
            value = row.get(key)
            return "-" if value is None or value == "" else shown(value)

        rows.append([field("node_id"), field("model"), cell, field("detail"), field("verifier")])
    return rows, failed
