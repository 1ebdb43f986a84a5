"""Registry URLs as a user writes them (``--registry``, ``LLM_MESH_REGISTRY_URL``): a list
``URL,URL,...`` of replicas tried in turn. Found 2026-12-05 (newuser32): the gateway's
OpenAI base URL (``.../v1``, what ``llm-mesh up`` prints first and the OpenAI SDK takes)
made every command ask ``/v1/mesh/...`` and fail with ``Not Found``: it names its
registry, and is taken as it; a URL without ``http://`` or ``https://`` failed in httpx
(``UnsupportedProtocol``) after the command began: refused first, saying what to write."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["registry_url_list", "same_origins", "source_words", "split_urls"]

_DEFAULT_PORT = {"http": 80, "https": 443}


def split_urls(value: str) -> tuple[str, ...]:
    """``"URL,URL,..."`` → the URLs, trailing ``/`` dropped, empty parts left out."""
    return tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())


def registry_url_list(value: str, setting: str) -> tuple[str, ...]:
    """:func:`split_urls` of registry URLs, each ``.../v1`` (the OpenAI base URL) or
    ``.../dashboard`` (the dashboard's, which ``up`` prints; newuser45) taken as its registry's URL;
    ``ValueError`` naming ``setting`` for a URL without its scheme."""
    out: list[str] = []
    for url in split_urls(value):
        if not url.lower().startswith(("http://", "https://")):
            shown = url[:200]
            raise ValueError(
                f"{setting}: {shown!r} has no scheme: write http://{shown} (or https://{shown})"
            )
        out.append(url.removesuffix("/v1").removesuffix("/dashboard"))
    return tuple(out)


def source_words(source: str) -> str:
    """Where a registry URL came from, in words that say what to change: ``source`` is
    ``Settings.registry_source`` (``--registry``, ``LLM_MESH_REGISTRY_URL``, a node.toml's
    path, ``""``: the default). ``cli/common.registry_source`` and a node's "registry
    unreachable" line (``node/service.py``) say it (cli40b: before, the node's did not).
    (Until cli42 ``earnings`` with a token not read from node.toml took the default over
    node.toml's registry_url, said here as such; now every command takes node.toml's.)"""
    if source in ("--registry", "LLM_MESH_REGISTRY_URL"):
        return f"the URL came from {source}"
    if source:
        return f"the URL came from registry_url in {source}: change it there, or override it"
    return "the URL is the default: no --registry, LLM_MESH_REGISTRY_URL or node.toml registry_url"


def _origin(url: str) -> tuple[str, str, int] | None:
    """``url``'s scheme, host (lower case) and port (the scheme's default when none), or
    ``None`` when it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORT or not host:
        return None
    return scheme, host, port or _DEFAULT_PORT[scheme]


def same_origins(urls: Sequence[str], own: Sequence[str]) -> bool:
    """Whether every URL of ``urls`` is at the scheme, host and port of one of ``own``
    (node.toml's ``registry_url``): what a CA file pinned for ``own`` may be used for
    (found 2026-12-07, small42: node.toml's ``registry_ca`` was trusted for any registry
    ``--registry`` or ``$LLM_MESH_REGISTRY_URL`` named). ``False`` when either is empty or
    a URL has no origin."""
    mine = {_origin(u) for u in own} - {None}
    return bool(urls) and bool(mine) and all(_origin(u) in mine for u in urls)
