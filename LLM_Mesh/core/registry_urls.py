"""Registry URLs as a user writes them (``--registry``, ``LLM_MESH_REGISTRY_URL``): a list
``URL,URL,...`` of replicas tried in turn. Found 2026-12-05 (newuser32): the gateway's
OpenAI base URL (``.../v1``, what ``llm-mesh up`` prints first and the OpenAI SDK takes)
made every command ask ``/v1/mesh/...`` and fail with ``Not Found``: it names its
registry, and is taken as it; a URL without ``http://`` or ``https://`` failed in httpx
(``UnsupportedProtocol``) after the command began: refused first, saying what to write."""

from __future__ import annotations

__all__ = ["registry_url_list", "split_urls"]


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
