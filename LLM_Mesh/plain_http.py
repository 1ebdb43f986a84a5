"""One WARNING per client when it sends a credential over plain http to another machine.

The CLI says so on stderr (``cli/common.warn_plain_http``); a program using the Python
API (:class:`~LLM_Mesh.client.MeshClient`, ``distributed_models``, ``mesh_manager``)
sent its API key to ``http://`` on another host without a word (found 2026-12-05).
:class:`PlainHttpNotice` logs it once, on the ``LLM_Mesh.client`` logger (a library
logs, never prints), the first time a credential is sent to such URLs
(``core/first_use.exposed_urls``: not https, not loopback); https and loopback
registries are not warned about.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from LLM_Mesh.core.first_use import exposed_urls
from LLM_Mesh.core.printable import log_text

__all__ = ["PlainHttpNotice"]

log = logging.getLogger("LLM_Mesh.client")


class PlainHttpNotice:
    """Says at most once that a credential goes over plain http to ``urls``' exposed ones;
    ``quiet``: never (a caller that said so itself, as the CLI does)."""

    def __init__(self, urls: Sequence[str], *, quiet: bool = False) -> None:
        self.exposed = () if quiet else exposed_urls(urls)
        self.said = False

    def sent(self, what: str) -> None:
        """``what`` (a credential: "the API key") is about to be sent."""
        if self.said or not self.exposed:
            return
        self.said = True
        where = ", ".join(log_text(u, 200) for u in self.exposed[:4])
        log.warning(
            "%s goes over plain http to %s: anyone on the network path can read it, use "
            "it, and answer in the registry's place; use https (the registry: llm-mesh "
            "registry serve --tls-cert/--tls-key)",
            what, where,
        )  # fmt: skip
