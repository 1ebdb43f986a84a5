"""``llm-mesh earnings``: an operator's earnings, per day, per model and per node.

Asks the registry's ``GET /v1/earnings`` with the operator's token: ``--operator-token``,
else ``$LLM_MESH_OPERATOR_TOKEN``, else ``operator_token`` in ``$LLM_MESH_HOME/node.toml``
(what the operator's node registers with) (:func:`operator_credential`). The registry is
every command's: ``--registry``, else ``$LLM_MESH_REGISTRY_URL``, else node.toml's
``registry_url``, else the default, whichever token (``cli/common.registry_settings``;
before cli42 a token not read from node.toml went to the default); an https registry's CA
file is ``--registry-ca``, else ``$LLM_MESH_REGISTRY_CA``, else node.toml's ``registry_ca``
(:func:`~LLM_Mesh.cli.common.with_node_ca`). Prints the tables of ``earnings_render.py``,
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
    registry_said,
    registry_settings,
    replica_memory,
    warn_plain_http,
)
from LLM_Mesh.cli.earnings_render import earnings_tables, summary_line, unpaid_lines
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


def operator_credential(settings: Settings, given: str | None) -> str:
    """The operator's token: ``given`` (``--operator-token``), else the settings' (the
    environment's), else node.toml's ``operator_token``; else an error. Where it goes is
    ``settings``' registry, whichever token it is: ``--registry``, else
    ``$LLM_MESH_REGISTRY_URL``, else node.toml's ``registry_url``, else the default, as every
    command reaching a registry (:func:`~LLM_Mesh.cli.common.registry_settings`, which
    ``earnings`` and ``ledger statement --operator`` build ``settings`` with). Found
    2026-12-05: a token read from node.toml went to the default ``http://127.0.0.1:8800``;
    found 2026-12-07 (cli42): one from ``--operator-token`` or the environment still did in
    ``earnings`` (whatever listened on that port of the operator's machine got it), while
    ``ledger statement --operator`` sent it to node.toml's ``registry_url``."""
    from LLM_Mesh.node.config import default_config_path, load_node_config

    given = given.strip() if given else None
    if given or settings.operator_token:
        named = "--operator-token" if given else "LLM_MESH_OPERATOR_TOKEN"
        return operator_token_checked(given or settings.operator_token or "", named)
    path = default_config_path(settings)
    config = load_node_config(path) if path.is_file() else None
    if config is not None and config.operator_token:
        return operator_token_checked(config.operator_token, f"operator_token in {path}")
    raise InvalidCredential(
        "earnings need the operator's token: --operator-token, LLM_MESH_OPERATOR_TOKEN, or "
        f"operator_token in {path} (the node `llm-mesh up` runs has a token of its own, new "
        "at every start: `llm-mesh node info` shows that node's earnings)"
    )


# credentials that are not an operator's token, by their prefix (core/identity.py makes them)
_NOT_OPERATOR_TOKENS = {"lmk_": "an API key", "lma_": "the registry's admin key"}


def operator_token_checked(token: str, named: str) -> str:
    """``token``, unless it is another credential of the mesh: then an error naming it (not
    quoting it), before it is sent (found 2026-12-06, newuser34: an API key went to the
    registry as the operator token, and only "unknown operator token" came back)."""
    what = _NOT_OPERATOR_TOKENS.get(token[:4])
    if what is None:
        return token
    raise InvalidCredential(
        f"{named}: that is {what}, not an operator token; an operator's token is lmo_..., "
        "made by the registry's admin: `llm-mesh registry operators add NAME`"
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
    # the registry and its CA by every command's order: flag, env, node.toml, default (cli42)
    settings = registry_settings(home, registry, registry_ca=ca)

    async def go(secret: str) -> dict[str, Any]:
        async with MeshClient(
            settings.registry_urls, ca_file=settings.registry_ca, memory=replica_memory(settings),
            notice=PlainHttpNotice((), quiet=True),  # said below (warn_plain_http)
        ) as client:  # fmt: skip
            return await client.earnings(secret, node=node, days=days)

    try:
        secret = operator_credential(settings, token)
        warn_plain_http(settings.registry_urls, "your operator token")
        report = asyncio.run(go(secret))
    except (MeshError, ValueError) as exc:  # a registry that did not answer: its URL's source
        raise fail(registry_said(exc, settings)) from exc
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(summary_line(report))
    for line in unpaid_lines(report):
        console.print(line)
    for table in earnings_tables(report, console.width):
        console.print(table)
