"""``llm-mesh earnings``: an operator's earnings, per day, per model and per node.

Asks the registry's ``GET /v1/earnings`` with the operator's token: ``--operator-token``,
else ``$LLM_MESH_OPERATOR_TOKEN``, else ``operator_token`` in ``$LLM_MESH_HOME/node.toml``
(what the operator's node registers with). Prints the tables of ``earnings_render.py``,
or the answer as it is with ``--json``. Amounts are integers in micro-NetworkTokens.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    fail,
    replica_memory,
    settings_from,
    warn_plain_http,
)
from LLM_Mesh.cli.earnings_render import earnings_tables, summary_line
from LLM_Mesh.client import MeshClient
from LLM_Mesh.config import Settings
from LLM_Mesh.core.retention import EARNINGS_MAX_DAYS
from LLM_Mesh.errors import InvalidCredential, MeshError
from LLM_Mesh.plain_http import PlainHttpNotice

OperatorTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--operator-token",
        help="The operator's token \\[env LLM_MESH_OPERATOR_TOKEN; else node.toml's operator_token]",
    ),
]


def operator_token(settings: Settings, given: str | None) -> str:
    """The token: given, else the settings' (env), else node.toml's; else an error."""
    if given and given.strip():
        return given.strip()
    if settings.operator_token:
        return settings.operator_token
    from LLM_Mesh.node.config import default_config_path, load_node_config

    path = default_config_path(settings)
    if path.is_file():
        token = load_node_config(path).operator_token
        if token:
            return token
    raise InvalidCredential(
        "earnings need the operator's token: --operator-token, LLM_MESH_OPERATOR_TOKEN, or "
        f"operator_token in {path} (the node `llm-mesh up` runs has a token of its own, new "
        "at every start: `llm-mesh node info` shows that node's earnings)"
    )


def earnings_command(
    node: Annotated[
        str | None, typer.Option("--node", help="Only this node (one of yours)")
    ] = None,
    token: OperatorTokenOpt = None,
    days: Annotated[
        int, typer.Option(min=1, max=EARNINGS_MAX_DAYS, help="UTC days, today included")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON")] = False,
    registry: RegistryOpt = None,
    registry_ca: RegistryCaOpt = None,
    home: HomeOpt = None,
) -> None:
    """An operator's earnings (micro-NetworkTokens): per day, per model, per node, and balance."""
    ca = str(Path(registry_ca).expanduser()) if registry_ca else None
    settings = settings_from(home, registry, registry_ca=ca)

    async def go(secret: str) -> dict[str, Any]:
        async with MeshClient(
            settings.registry_urls, ca_file=settings.registry_ca, memory=replica_memory(settings),
            notice=PlainHttpNotice((), quiet=True),  # said below (warn_plain_http)
        ) as client:  # fmt: skip
            return await client.earnings(secret, node=node, days=days)

    try:
        secret = operator_token(settings, token)
        warn_plain_http(settings.registry_urls, "your operator token")
        report = asyncio.run(go(secret))
    except (MeshError, ValueError) as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(summary_line(report))
    for table in earnings_tables(report, console.width):
        console.print(table)
