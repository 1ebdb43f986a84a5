"""``llm-mesh node keys ...`` and ``llm-mesh node tls ...``: the node's key and certificate
(split from ``node_commands.py``, which adds both to ``llm-mesh node``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from LLM_Mesh.cli.common import HomeOpt, console, fail, settings_from
from LLM_Mesh.config import DEFAULT_NODE_PORT, Settings

# --- keys --------------------------------------------------------------------------------

keys_app = typer.Typer(help="The node's identity key.", no_args_is_help=True)


@keys_app.command("init")
def keys_init(
    key_file: Annotated[
        Path | None, typer.Option(help="Where the key lives [$LLM_MESH_HOME/node.key]")
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Make the node's Ed25519 key (mode 0600) unless one exists; print the node id it gives."""
    from LLM_Mesh.node.keys import key_path, load_or_create_key

    settings = settings_from(home)
    try:
        nk = load_or_create_key(key_path(settings, key_file))
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    said = "made" if nk.created else "exists (kept)"
    console.print(f"node key {nk.path}: {said}")
    console.print(f"node id: {nk.node_id}", markup=False, highlight=False)


@keys_app.command("forget-gateway")
def keys_forget_gateway(home: HomeOpt = None) -> None:
    """Forget the gateway key this node learned (gateway.pin): the next registration pins the
    key its answer carries (restart the node to register now). For a rotated registry.key."""
    from LLM_Mesh.node.gateway_pin import forget_pin, pin_path

    path = pin_path(settings_from(home))
    try:
        key = forget_pin(path)
    except OSError as exc:
        raise fail(exc) from exc
    said = f"forgot gateway key {key}" if key else "no gateway key pinned"
    typer.echo(f"{path}: {said}; the next registration pins the registry's key")


# --- tls ---------------------------------------------------------------------------------

tls_app = typer.Typer(help="The node's TLS certificate.", no_args_is_help=True)


@tls_app.command("init")
def tls_init(
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="Host name or IP the registry reaches this node at (repeatable) "
            "\\[node.toml public_url's host, else 127.0.0.1 and localhost]",
        ),
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="[$LLM_MESH_HOME/node-tls.crt]")] = None,
    key: Annotated[Path | None, typer.Option(help="[$LLM_MESH_HOME/node-tls.key]")] = None,
    days: Annotated[int, typer.Option(help="Validity in days")] = 825,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing certificate and key")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Make a self-signed TLS certificate for this node; print its SHA-256 fingerprint.

    The fingerprint travels in the node's signed registration and the gateway pins it.
    Start the node with --tls-cert/--tls-key (or tls_cert/tls_key in node.toml).
    """
    from LLM_Mesh.core.tls import show_fingerprint
    from LLM_Mesh.node.tls import default_paths, make_self_signed

    settings = settings_from(home)
    cert_path, key_path = default_paths(settings)
    hosts = list(host) if host else _default_tls_hosts(settings)
    try:
        nc = make_self_signed(
            (cert or cert_path).expanduser(), (key or key_path).expanduser(), hosts,
            force=force, days=days,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    said = "made" if nc.created else "exists (kept; --force makes a new one)"
    for line in (
        f"certificate {nc.cert_path}: {said}",
        f"key {nc.key_path} (mode 0600)",
        f"sha256 fingerprint: {show_fingerprint(nc.fingerprint)}",
        # the home, and an https URL: with a certificate the node serves https only (found
        # 2026-12-06, newuser35b: this command as printed started ~/.llm-mesh's node, and with
        # node.toml's http public_url stopped: "public_url must be https://")
        f"serve it: llm-mesh node start --home {settings.home} --public-url "
        f"https://{_url_host(hosts[0])}:{_node_port(settings)} --tls-cert {nc.cert_path} "
        f"--tls-key {nc.key_path}",
    ):
        typer.echo(line)  # plain: a fingerprint and paths are copied as they are


def _node_toml(settings: Settings) -> Any:
    """The home's node.toml (a ``NodeConfig``), or None: none, or not readable as one."""
    from LLM_Mesh.node.config import default_config_path, load_node_config

    path = default_config_path(settings)
    if not path.is_file():
        return None
    try:
        return load_node_config(path)
    except ValueError:
        return None


def _node_port(settings: Settings) -> int:
    cfg = _node_toml(settings)
    return int(cfg.port) if cfg is not None and cfg.port else DEFAULT_NODE_PORT


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address, bracketed in a URL


def _default_tls_hosts(settings: Settings) -> list[str]:
    from urllib.parse import urlsplit

    cfg = _node_toml(settings)
    if cfg is not None and cfg.public_url and urlsplit(cfg.public_url).hostname:
        return [str(urlsplit(cfg.public_url).hostname)]
    return ["127.0.0.1", "localhost"]
