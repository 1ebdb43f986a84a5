"""The outbound HTTP clients of ``llm-mesh node ...`` (split from ``cli/node_commands.py``):
one factory per kind, looked up on this module when called, so tests replace them here."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from LLM_Mesh.config import Settings

__all__ = ["download_client", "http_client"]


def http_client(timeout_s: float = 10.0, registry_ca: str | None = None) -> httpx.AsyncClient:
    """The one outbound client of a command (tests replace this factory).

    https is verified with the system's CAs plus ``registry_ca`` (a command's settings'
    CA: node.toml's ``registry_ca`` too, ``common.with_node_ca``), else
    ``$LLM_MESH_REGISTRY_CA``, and this machine's own node certificate
    (``$LLM_MESH_HOME/node-tls.crt``, so ``node pause`` and friends reach a local node
    serving https with a ``node tls init`` certificate).
    """
    from LLM_Mesh.node.tls import default_paths
    from LLM_Mesh.tls import client_ssl_context

    settings = Settings.from_env()
    own_cert = default_paths(settings)[0]
    ca = registry_ca or settings.registry_ca
    trust = [f for f in (ca, own_cert if own_cert.is_file() else None) if f]
    return httpx.AsyncClient(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout_s, read=max(timeout_s, 120.0)),
        verify=client_ssl_context(*trust),
    )


def download_client(allow_origins: Sequence[tuple[str, int]] = ()) -> httpx.AsyncClient:
    """The client of a model download (tests replace this factory): it follows redirects,
    to global addresses only (``node/download_guard.py``), but for ``allow_origins``; https
    is verified as :func:`http_client` verifies it."""
    from LLM_Mesh.node.download_guard import guarded_client
    from LLM_Mesh.node.tls import default_paths
    from LLM_Mesh.tls import client_ssl_context

    settings = Settings.from_env()
    own_cert = default_paths(settings)[0]
    trust = [f for f in (settings.registry_ca, own_cert if own_cert.is_file() else None) if f]
    return guarded_client(
        timeout=httpx.Timeout(10.0, read=120.0),
        verify=client_ssl_context(*trust),
        allow_origins=allow_origins,
    )
