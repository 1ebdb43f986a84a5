"""Quality control, admin: ``registry nodes trust|untrust|verifiers|clear``, ``registry canary run``.

llm-mesh registry nodes trust NODE_ID [--model M ...]
                                           the node becomes a canary verifier for those
                                           models (default: those it serves now with a
                                           declared sha256, printed): its answers are the
                                           references for those files, and no other
llm-mesh registry nodes untrust NODE_ID [--model M ...]
                                           unmark those models (default: all; cli42:
                                           before, only revoking its key undid trust)
llm-mesh registry nodes verifiers          the verifiers and the files each is marked for
llm-mesh registry nodes clear NODE_ID      lift the node's quarantines (it routes again)
                                           and release its held earnings to its operator
llm-mesh registry canary run [--node ID] [--model M]
                                           probe now (the running registry, admin key) and
                                           print each verdict

A mark names model files (model id and the sha256 the node declared when marked,
``core/verifier_marks.py``; found 2026-12-07, verifier43: a mark covered every model the
node declared, later ones the admin never checked too). A mark made before migration 0034
covers no model: ``verifiers`` says so; mark it again.
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
from LLM_Mesh.core.verifier_marks import chosen_marks, unmarked_text
from LLM_Mesh.errors import MeshError

canary_app = typer.Typer(help="Canary probes: is each node running what it claims?")


ModelsOpt = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", metavar="MODEL", help="A model id (repeatable)"),
]


def _marks_text(marks: dict[str, str]) -> str:
    return ", ".join(f"{m} (sha256 {s[:12]}…)" for m, s in sorted(marks.items()))


@nodes_app.command("trust")
def nodes_trust(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    model: ModelsOpt = None,
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Mark a node as a canary verifier for the model files you checked (--model; default:
    every model it serves now with a declared sha256, printed): its answers are the
    references for those files, and trusted_only requests are routed to it for them only."""
    at = datetime.now(timezone.utc)

    async def mark(s: Any) -> tuple[bool, dict[str, str]]:
        rec = await s.get_node(node_id)
        if rec is None:
            raise ValueError(
                f"node {node_id} is not registered on this store: a verifier is marked for "
                "the files its registration declares (check the id: llm-mesh status)"
            )
        marks = chosen_marks(node_id, rec.models, model or [])
        return await s.trust_verifier(node_id, marks, at), marks

    added, marks = with_admin_store(_settings(home, database_url), mark)
    console.print(
        f"node {shown(node_id)} {'is now' if added else 'was already'} a canary verifier for: "
        f"{shown(_marks_text(marks))}"
    )


@nodes_app.command("untrust")
def nodes_untrust(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    model: ModelsOpt = None,
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Unmark a canary verifier (`registry nodes trust`), for --model only or for all: its
    answers are no longer the references for those files; the node stays registered and routed."""
    models = model or []
    removed = with_admin_store(
        _settings(home, database_url), lambda s: s.untrust_verifier(node_id, models)
    )
    what = f" for {shown(', '.join(models))}" if models else ""
    console.print(
        f"node {shown(node_id)} {'is no longer' if removed else 'was not'} a canary verifier{what}"
    )


@nodes_app.command("verifiers")
def nodes_verifiers(database_url: DbOpt = None, home: HomeOpt = None) -> None:
    """The canary verifiers and the model files (model, sha256) each is marked for."""
    marks = with_admin_store(_settings(home, database_url), lambda s: s.list_verifiers())
    if not marks:
        console.print("no canary verifier (mark one: llm-mesh registry nodes trust NODE_ID)")
        return
    rows = [
        [
            shown(v.node_id),
            "\n".join(f"{shown(m)} {s}" for m, s in sorted(v.models.items()))
            or "[yellow]none: an older llm-mesh's mark, mark again[/]",
            v.trusted_at.isoformat(timespec="seconds") if v.trusted_at else "-",
        ]
        for v in marks
    ]
    console.print(
        fitted_table(
            ("node", "models (sha256)", "marked"),
            rows,
            keys={"node", "models (sha256)"},
            width=console.width,
        )
    )
    for v in marks:
        if not v.models:
            err.print(f"warning: {unmarked_text(v.node_id)}", markup=False, soft_wrap=True)


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
    from LLM_Mesh.secret_files import admin_key_for, admin_key_home_urls, admin_key_missing

    # the CA: --registry-ca, else $LLM_MESH_REGISTRY_CA, else node.toml's (found 2026-12-06,
    # ratelimit38: $LLM_MESH_REGISTRY_CA only, unlike every other command reaching a registry)
    ca = str(registry_ca.expanduser()) if registry_ca else None
    settings = registry_settings(home, registry, registry_ca=ca)
    # the home's admin.key only to its own registry, once it proved it holds the recorded
    # registry key (admin_proof.py); another needs LLM_MESH_ADMIN_KEY
    admin = admin_key_for(settings, settings.registry_urls)
    if admin is None:
        missing = admin_key_missing(settings.registry_urls, admin_key_home_urls(settings))
        err.print(f"error: {missing}", markup=False)
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
