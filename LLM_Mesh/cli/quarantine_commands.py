"""A node was quarantined: the admin's views.

llm-mesh registry quarantines              every quarantine in the store: node, model,
                                           since, why (its kind and the whole reason),
                                           the node's held earnings, what to run next
llm-mesh registry usage-audit [--node ID] [--model M]
                                           the running registry's audit by peers of the
                                           token counts nodes state (``GET
                                           /mesh/usage-audit``, admin key): each node's
                                           shares of the gateway's caps, its peers'
                                           median, the recent verdicts

``quarantines`` reads the store, as ``nodes clear`` acts on it: every replica's quarantines
(a failed canary probe, the departures test across sampled probes, the usage audit). The
audit's shares are the store's evidence, every replica's answers (``"evidence": "store"``,
since 2026-12-05; a registry without it: the answering replica's own, in memory), as the
replica that answered last judged them; its recent verdicts are the ones it claimed (a
verdict's numbers are in its quarantine's reason too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.padding import Padding

from LLM_Mesh.cli.admin_commands import DbOpt, _settings, with_admin_store
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
from LLM_Mesh.core.quarantine_reason import reason_kind
from LLM_Mesh.errors import MeshError

QUARANTINE_COLUMNS = ("node", "model", "since", "why", "held µNT")
NEXT = (
    "to judge: the reason's numbers; llm-mesh registry usage-audit (the audit's shares and "
    "peers); llm-mesh node info on the node. To clear (routed again; the held earnings paid "
    "to the operator once none of its nodes is quarantined): llm-mesh registry nodes clear "
    "NODE_ID, then llm-mesh registry canary run --node NODE_ID probes it at once. To revoke "
    "(held earnings forfeited): llm-mesh registry nodes revoke NODE_ID. docs/operations.md, "
    "'A node was quarantined'"
)


def quarantines_command(database_url: DbOpt = None, home: HomeOpt = None) -> None:
    """List quarantined nodes: model, since, why (a failed canary probe, the departures test
    across sampled probes, the usage audit), the earnings held, and what to run next."""
    from LLM_Mesh.registry.held import held_amounts

    async def go(s: Any) -> tuple[list[Any], dict[str, int]]:
        records = [r for r in await s.canary_records() if r.quarantined]
        return records, await held_amounts(s.engine, sorted({r.node_id for r in records}))

    records, held = with_admin_store(_settings(home, database_url), go)
    if not records:
        console.print("no node is quarantined")
        return
    rows = [
        [
            shown(r.node_id),
            shown(r.model),
            r.quarantined_at.strftime("%Y-%m-%d %H:%M") if r.quarantined_at else "-",
            f"[red]{shown(reason_kind(r.reason))}[/]\n{shown(r.reason or '-')}",
            str(held.get(r.node_id, 0)),
        ]
        for r in records
    ]
    console.print(
        fitted_table(
            QUARANTINE_COLUMNS, rows, keys={"node", "model"}, width=console.width,
            title="Quarantines", right={"held µNT"},
        )
    )  # fmt: skip
    console.print(NEXT, markup=False, soft_wrap=False)


SHARE_COLUMNS = ("node", "model", "answers", "completion", "prompt", "peers")


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [x for x in value if isinstance(x, Mapping)] if isinstance(value, list) else []


def _share(row: Mapping[str, Any], kind: str) -> str:
    """The node's share against its peers' median (``-``: no evidence yet)."""

    def num(key: str) -> str:
        v = row.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "-"
        return f"{float(v):.2f}"

    return f"{num(f'{kind}_share')}\npeers {num(f'peers_{kind}_share')}"


def _cell(row: Mapping[str, Any], key: str) -> str:
    v = row.get(key)
    return "-" if v is None or v == "" else shown(v)


def usage_audit_command(
    node: Annotated[str | None, typer.Option(help="Only this node id")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    registry: RegistryOpt = None,
    registry_ca: RegistryCaOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show the usage audit: each node's stated tokens as a share of the gateway's caps
    against its model's other nodes' median in the same time windows, and recent verdicts."""
    from LLM_Mesh.client import MeshClient
    from LLM_Mesh.plain_http import PlainHttpNotice
    from LLM_Mesh.secret_files import admin_key_for, admin_key_home_urls, admin_key_missing

    # the CA: --registry-ca, else $LLM_MESH_REGISTRY_CA, else node.toml's (found 2026-12-06,
    # ratelimit38: $LLM_MESH_REGISTRY_CA only, unlike every other command reaching a registry)
    ca = str(registry_ca.expanduser()) if registry_ca else None
    settings = registry_settings(home, registry, registry_ca=ca)
    admin = admin_key_for(settings, settings.registry_urls)
    if admin is None:
        missing = admin_key_missing(settings.registry_urls, admin_key_home_urls(settings))
        err.print(f"error: {missing}", markup=False)
        raise typer.Exit(1)
    warn_plain_http(settings.registry_urls, "the admin key")

    async def go() -> Any:
        async with MeshClient(
            settings.registry_urls, admin_key=admin.key, admin_registry_key=admin.registry_key,
            ca_file=settings.registry_ca, memory=replica_memory(settings),
            notice=PlainHttpNotice((), quiet=True),
        ) as c:  # fmt: skip
            return await c.usage_audit()

    try:
        answer = asyncio.run(go())
    except MeshError as exc:  # a registry that did not answer: where its URL came from too
        raise fail(registry_said(exc, settings)) from exc
    answer = answer if isinstance(answer, Mapping) else {}

    def wanted(r: Mapping[str, Any]) -> bool:
        return (node is None or r.get("node_id") == node) and (
            model is None or r.get("model") == model
        )

    nodes = [r for r in _list(answer.get("nodes")) if wanted(r)]
    verdicts = [v for v in _list(answer.get("verdicts")) if wanted(v)]
    found = answer.get("policy")
    policy: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    console.print(
        "a node is flagged (quarantined for the model, its operator's earnings held) when its "
        "completion or prompt tokens as a share of the gateway's caps are over "
        f"{shown(policy.get('factor', '?'))} times its model's other nodes' median in the same "
        f"time windows, over {shown(policy.get('min_requests', '?'))} answers or more "
        f"(other nodes answering: {shown(policy.get('min_peers', '?'))} or more); "
        + (
            "every replica's answers, the store's evidence (as this replica last judged it)"
            if answer.get("evidence") == "store"
            else "this replica's answers since it started"
        ),
        soft_wrap=False,
    )
    if not nodes:
        console.print("no answers audited yet")
    else:
        rows = [
            [_cell(r, "node_id"), _cell(r, "model"), _cell(r, "requests"),
             _share(r, "completion"), _share(r, "prompt"), _cell(r, "peers")]
            for r in nodes
        ]  # fmt: skip
        console.print(
            fitted_table(
                SHARE_COLUMNS, rows, keys={"node", "model"}, width=console.width,
                title="Usage audit: shares of the gateway's caps",
            )
        )  # fmt: skip
    if verdicts:  # one block each: the reason whole, wrapped (a column cut it to pieces)
        console.print("[bold]Recent verdicts[/] (each a quarantine):")
        for v in verdicts:
            console.print(f"{_cell(v, 'node_id')}  {_cell(v, 'model')}")
            console.print(Padding(_cell(v, "reason"), (0, 0, 0, 2)))
