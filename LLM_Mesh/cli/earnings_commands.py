"""``llm-mesh earnings``: an operator's earnings, per day, per model and per node.

Asks the registry's ``GET /v1/earnings`` with the operator's token: ``--operator-token``,
else ``$LLM_MESH_OPERATOR_TOKEN``, else ``operator_token`` in ``$LLM_MESH_HOME/node.toml``
(what the operator's node registers with); a token from node.toml goes to node.toml's
``registry_url`` unless ``--registry`` or ``$LLM_MESH_REGISTRY_URL`` names one
(:func:`operator_credential`); an https registry's CA file is ``--registry-ca``, else
``$LLM_MESH_REGISTRY_CA``, else node.toml's ``registry_ca`` (:func:`with_node_ca`). Prints the tables of ``earnings_render.py``, or the answer as
it is with ``--json``. Amounts are integers in micro-NetworkTokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    fail,
    registry_said,
    replica_memory,
    settings_from,
    warn_plain_http,
    with_node_ca,
)
from LLM_Mesh.cli.earnings_render import earnings_tables, summary_line
from LLM_Mesh.client import MeshClient
from LLM_Mesh.config import Settings, split_urls
from LLM_Mesh.core.registry_urls import NOT_TAKEN
from LLM_Mesh.core.retention import EARNINGS_MAX_DAYS
from LLM_Mesh.errors import InvalidCredential, MeshError
from LLM_Mesh.plain_http import PlainHttpNotice

if TYPE_CHECKING:
    from LLM_Mesh.node.config import NodeConfig

OperatorTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--operator-token",
        help="The operator's token \\[env LLM_MESH_OPERATOR_TOKEN; else node.toml's operator_token]",
    ),
]


def operator_credential(settings: Settings, given: str | None) -> tuple[str, Settings]:
    """The operator's token (given, else the settings' (env), else node.toml's; else an
    error) and the settings to send it with: a token
    read from node.toml goes to the registry node.toml names (the node's own), unless
    ``--registry`` or ``$LLM_MESH_REGISTRY_URL`` named one (``settings.registry_source``; found
    2026-12-05: ``llm-mesh earnings`` in a home ``./setup-node-operator.sh --registry URL``
    wrote sent node.toml's token to the default ``http://127.0.0.1:8800``, "no registry
    answered", or to whatever listened there); node.toml's ``registry_ca`` is trusted
    when no CA file was named (:func:`with_node_ca`)."""
    from LLM_Mesh.node.config import default_config_path, load_node_config

    path = default_config_path(settings)
    given = given.strip() if given else None
    needed = not settings.registry_ca or not (given or settings.operator_token)
    config = load_node_config(path) if needed and path.is_file() else None
    settings = with_node_ca(settings, config, path)
    if given or settings.operator_token:
        named = "--operator-token" if given else "LLM_MESH_OPERATOR_TOKEN"
        token = operator_token_checked(given or settings.operator_token or "", named)
        return token, _not_taken(settings, config, path)
    if config is not None and config.operator_token:
        urls = () if settings.registry_source else split_urls(config.registry_url or "")
        if urls:  # (a source already: --registry, the env's, or node.toml's own)
            settings = dataclasses.replace(
                settings, registry_url=",".join(urls), registry_urls=(), registry_source=str(path)
            )
        named = f"operator_token in {path}"
        return operator_token_checked(config.operator_token, named), settings
    raise InvalidCredential(
        "earnings need the operator's token: --operator-token, LLM_MESH_OPERATOR_TOKEN, or "
        f"operator_token in {path} (the node `llm-mesh up` runs has a token of its own, new "
        "at every start: `llm-mesh node info` shows that node's earnings)"
    )


def _not_taken(settings: Settings, config: NodeConfig | None, path: Path) -> Settings:
    """``settings`` for a token not read from node.toml: its registry as it is, the default
    unless named, with node.toml's ``registry_url``, if it has one, said not taken
    (``core/registry_urls.NOT_TAKEN``; found 2026-12-07: "the URL is the default: no
    --registry, LLM_MESH_REGISTRY_URL or node.toml registry_url" with one in node.toml)."""
    if settings.registry_source or not path.is_file():
        return settings
    if config is None:  # not read for the CA: read for these words only, an error unsaid
        from LLM_Mesh.node.config import load_node_config

        try:
            config = load_node_config(path)
        except (OSError, ValueError):
            return settings
    if not split_urls(config.registry_url or ""):
        return settings
    return dataclasses.replace(settings, registry_source=f"{NOT_TAKEN}{path}")


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
    settings = settings_from(home, registry, registry_ca=ca)

    async def go(secret: str) -> dict[str, Any]:
        async with MeshClient(
            settings.registry_urls, ca_file=settings.registry_ca, memory=replica_memory(settings),
            notice=PlainHttpNotice((), quiet=True),  # said below (warn_plain_http)
        ) as client:  # fmt: skip
            return await client.earnings(secret, node=node, days=days)

    try:
        secret, settings = operator_credential(settings, token)
        warn_plain_http(settings.registry_urls, "your operator token")
        report = asyncio.run(go(secret))
    except (MeshError, ValueError) as exc:  # a registry that did not answer: its URL's source
        raise fail(registry_said(exc, settings)) from exc
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(summary_line(report))
    for table in earnings_tables(report, console.width):
        console.print(table)
