"""Registry URLs as a user writes them (``--registry``, ``LLM_MESH_REGISTRY_URL``): a list
``URL,URL,...`` of replicas tried in turn. Found 2026-12-05 (newuser32): the gateway's
OpenAI base URL (``.../v1``, what ``llm-mesh up`` prints first and the OpenAI SDK takes)
made every command ask ``/v1/mesh/...`` and fail with ``Not Found``: it names its
registry, and is taken as it; a URL without ``http://`` or ``https://`` failed in httpx
(``UnsupportedProtocol``) after the command began: refused first, saying what to write."""

from __future__ import annotations

__all__ = ["NOT_TAKEN", "registry_url_list", "source_words", "split_urls"]

# ``Settings.registry_source`` of the default URL taken while a node.toml (its path follows)
# names a registry_url that was not taken: ``earnings`` with a token not read from that
# file (cli/earnings_commands.operator_credential)
NOT_TAKEN = "default, not "


def split_urls(value: str) -> tuple[str, ...]:
    """``"URL,URL,..."`` → the URLs, trailing ``/`` dropped, empty parts left out."""
    return tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())


def registry_url_list(value: str, setting: str) -> tuple[str, ...]:
    """:func:`split_urls` of registry URLs, each ``.../v1`` taken as its registry's URL;
    ``ValueError`` naming ``setting`` for a URL without its scheme."""
    out: list[str] = []
    for url in split_urls(value):
        if not url.lower().startswith(("http://", "https://")):
            shown = url[:200]
            raise ValueError(
                f"{setting}: {shown!r} has no scheme: write http://{shown} (or https://{shown})"
            )
        out.append(url.removesuffix("/v1"))
    return tuple(out)


def source_words(source: str) -> str:
    """Where a registry URL came from, in words that say what to change: ``source`` is
    ``Settings.registry_source`` (``--registry``, ``LLM_MESH_REGISTRY_URL``, a node.toml's
    path, ``""``: the default, or :data:`NOT_TAKEN` and a node.toml's path: the default, that
    file's registry_url not taken). ``cli/common.registry_source`` and a node's "registry
    unreachable" line (``node/service.py``) say it (cli40b: before, the node's did not)."""
    if source in ("--registry", "LLM_MESH_REGISTRY_URL"):
        return f"the URL came from {source}"
    if source.startswith(NOT_TAKEN):  # found 2026-12-07: "no ... node.toml registry_url"
        return (
            "the URL is the default: no --registry or LLM_MESH_REGISTRY_URL; registry_url in "
            f"{source.removeprefix(NOT_TAKEN)} goes only with that file's operator_token, not "
            "one from --operator-token or LLM_MESH_OPERATOR_TOKEN: pass --registry URL"
        )
    if source:
        return f"the URL came from registry_url in {source}: change it there, or override it"
    return "the URL is the default: no --registry, LLM_MESH_REGISTRY_URL or node.toml registry_url"
