"""``llm-mesh node pause | resume | drain | info``: the running node, over its admin
endpoints (split from ``cli/node_commands.py``, which adds these commands to ``llm-mesh
node``, in this order; and the hidden ``node earnings``, which says where earnings are).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli import node_clients
from LLM_Mesh.cli.common import HomeOpt, console, err, fail, settings_from
from LLM_Mesh.errors import MeshError

__all__ = [
    "NodeUrlOpt", "node_drain", "node_earnings_cmd", "node_info_cmd", "node_pause",
    "node_resume",
]  # fmt: skip

NodeUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--node-url",
        help="The local node's URL \\[the node running with the home's key (--home, "
        "$LLM_MESH_HOME; where it listens), else the node its node.toml configures (its "
        "host, port, https with tls_cert), else http://127.0.0.1:8801]",
    ),
]


def _node_url(given: str | None, home: Path | None = None) -> str:
    """``--node-url``, else where the node running with the home's key listens (written
    into its lock: ``node start --port`` overrides node.toml, or has none), else the node
    the home's node.toml configures, else 8801's. The home: ``--home``, else
    ``$LLM_MESH_HOME`` (found 2026-12-05, newuser32: no ``--home`` here, unlike ``up`` and
    ``node start``)."""
    from LLM_Mesh.node.config import default_config_path, load_node_config
    from LLM_Mesh.node.control import checked_home_node_url

    if given:
        return given
    settings = settings_from(home)
    path = default_config_path(settings)
    try:
        cfg = load_node_config(path) if path.is_file() else None
    except (OSError, ValueError) as exc:
        raise fail(ValueError(f"{exc} (or pass --node-url)")) from exc
    try:  # another home's node where this stopped one would be: refused (newuser41)
        return asyncio.run(checked_home_node_url(settings, cfg, node_clients.http_client))
    except MeshError as exc:
        raise fail(exc) from exc


def _admin(node_url: str, action: str) -> dict[str, Any]:
    from LLM_Mesh.node.control import node_admin

    async def go() -> dict[str, Any]:
        async with node_clients.http_client() as client:
            return await node_admin(client, node_url, action)

    try:
        return asyncio.run(go())
    except MeshError as exc:
        raise fail(exc) from exc


def node_pause(node_url: NodeUrlOpt = None, home: HomeOpt = None) -> None:
    """Stop taking new requests (what runs or waits finishes)."""
    health = _admin(_node_url(node_url, home), "pause")
    console.print(f"node {health.get('node_id')}: [yellow]{health.get('state')}[/]")


def node_resume(node_url: NodeUrlOpt = None, home: HomeOpt = None) -> None:
    """Take requests again after pause or drain."""
    health = _admin(_node_url(node_url, home), "resume")
    console.print(f"node {health.get('node_id')}: [green]{health.get('state')}[/]")


def node_drain(
    node_url: NodeUrlOpt = None,
    wait: Annotated[bool, typer.Option(help="Wait until nothing runs or waits")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 600.0,
    home: HomeOpt = None,
) -> None:
    """Finish in-flight work and take nothing new; by default wait until it is done."""
    from LLM_Mesh.node.control import wait_drained

    url = _node_url(node_url, home)
    health = _admin(url, "drain")
    console.print(f"node {health.get('node_id')}: [yellow]{health.get('state')}[/]")
    if not wait:
        return
    with console.status("draining") as status:

        def show(h: dict[str, Any]) -> None:
            status.update(
                f"draining: {h.get('in_flight', 0)} running, {h.get('queued', 0)} waiting"
            )

        async def go() -> dict[str, Any]:
            async with node_clients.http_client() as client:
                return await wait_drained(client, url, on_poll=show, timeout_s=timeout)

        try:
            asyncio.run(go())
        except (MeshError, TimeoutError) as exc:
            raise fail(exc) from exc
    console.print("[green]drained[/]: nothing running; stop the node or `llm-mesh node resume`")


def node_info_cmd(node_url: NodeUrlOpt = None, home: HomeOpt = None) -> None:
    """The running node: identity, models, hardware, uptime, requests, tokens and earnings."""
    from LLM_Mesh.cli.earnings_render import node_earnings_view
    from LLM_Mesh.cli.node_render import hosted_models_table, info_table
    from LLM_Mesh.node.control import node_earnings, node_info, registry_quality

    url = _node_url(node_url, home)

    async def go() -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        async with node_clients.http_client() as client:
            info = await node_info(client, url)
            registry = info.get("registry")
            if isinstance(registry, dict) and registry.get("url"):
                info["quality"] = await registry_quality(
                    client, str(registry["url"]), str(info.get("node_id"))
                )
            if registry is None:
                return info, None, None
            try:  # the node asks its registry, with its operator token
                return info, await node_earnings(client, url), None
            except MeshError as exc:
                return info, None, str(exc)

    try:
        info, earned, problem = asyncio.run(go())
    except MeshError as exc:
        raise fail(exc) from exc
    console.print(info_table(info))
    console.print(hosted_models_table(info.get("models") or [], console.width))
    for part in node_earnings_view(info, earned, problem):
        console.print(part)


def node_earnings_cmd(
    args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
) -> None:
    """No such command: where earnings are (found 2026-12-06, newuser35b: an operator typed
    it, README names the node's `earnings` endpoint, and Typer said only "No such command")."""
    err.print("error: no `llm-mesh node earnings`: `llm-mesh node info` shows this node's "
              "earnings (on its machine, no token), `llm-mesh earnings` your operator's, "
              "every node (`--node ID` for one)", markup=False, highlight=False)  # fmt: skip
    raise typer.Exit(2)
