"""Who may ask this node for inference: its mesh's gateway, or (standalone) loopback.

The rules (:mod:`LLM_Mesh.core.gateway_auth` decides the signature part):

registered node (``register = true``, the default)
    ``POST /v1/chat/completions`` and ``/v1/completions`` need the gateway's signature
    with the key pinned from the registry's answer to this node's signed registration
    (``RegistrationAccepted.registry_public_key``; a re-registration re-pins it, a
    registration answer without a key leaves the node refusing inference; node.toml's
    ``registry_public_key`` pins a key from the start instead, and then no answer can
    replace it: no trust on first use over plain HTTP). Loopback
    callers are not exempt: on a shared machine loopback is not the operator. Without
    a pinned key yet (not registered) every inference request is 401.
standalone node (``register = false``)
    there is no gateway: inference answers loopback clients only, unauthenticated
    (local use, tests); anyone else gets 401.

Not guarded: ``GET /v1/models`` (what the node serves, public anyway), ``GET
/mesh/health`` (the registry's active checks). ``/mesh/info`` (hardware, counters)
and ``/mesh/admin/*`` answer loopback clients only (``node/app.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from LLM_Mesh.core.gateway_auth import GatewayVerifier
from LLM_Mesh.errors import BadSignature, MeshError

log = logging.getLogger("LLM_Mesh.node.gateway")

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
INFERENCE_PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


def is_loopback(host: str | None) -> bool:
    host = host or ""
    return host in LOOPBACK or host.startswith("127.")


class GatewayGuard:
    """The node's gateway check; ``wall_clock`` is unix seconds (injectable)."""

    def __init__(
        self,
        node_id: str,
        *,
        registering: bool,
        wall_clock: Callable[[], float],
        configured_key: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.registering = registering
        self.wall_clock = wall_clock
        self.refused = 0
        # node.toml ``registry_public_key``: pinned now, never replaced (ValueError if bad)
        self.configured_key = configured_key
        self.verifier: GatewayVerifier | None = None
        if configured_key is not None:
            try:
                self.verifier = GatewayVerifier(configured_key, node_id)
            except MeshError as exc:
                raise ValueError(f"registry_public_key: {exc}") from None

    @property
    def registry_id(self) -> str | None:
        return self.verifier.registry_id if self.verifier else None

    def pin(self, accepted: Mapping[str, Any]) -> None:
        """Pin the gateway key from a ``RegistrationAccepted`` body (a new key replaces the
        old one; the same key keeps its replay cache)."""
        key = accepted.get("registry_public_key")
        if not isinstance(key, str) or not key:
            log.error(
                "the registry's answer carries no gateway key (an older registry?): this "
                "node refuses every inference request until it registers with one that does"
            )
            self.verifier = None
            return
        if self.verifier is not None and self.verifier.public_key == key:
            return
        if self.configured_key is not None:
            log.error(
                "the registry answered with gateway key %s, but registry_public_key in the "
                "configuration pins %s: its requests will be refused (another registry, or "
                "someone on the path)",
                key,
                self.configured_key,
            )
            return
        try:
            self.verifier = GatewayVerifier(key, self.node_id)
        except MeshError as exc:
            log.error("the registry's gateway key is unusable: %s", exc)
            self.verifier = None
            return
        log.info("pinned gateway %s", self.verifier.registry_id)

    def check(self, headers: Mapping[str, str], client_host: str | None, path: str,
              body: bytes) -> None:  # fmt: skip
        """Raise 401 unless this inference request may be served (see the module docstring)."""
        try:
            self._check(headers, client_host, path, body)
        except MeshError as exc:
            self.refused += 1
            log.debug("refused a request from %s: %s", client_host, exc)
            raise

    def _check(self, headers: Mapping[str, str], client_host: str | None, path: str,
               body: bytes) -> None:  # fmt: skip
        if not self.registering:
            if is_loopback(client_host):
                return
            raise BadSignature(
                "this node runs without a registry (register = false): it serves loopback "
                "clients only"
            )
        verifier = self.verifier
        if verifier is None:
            raise BadSignature(
                "this node serves inference to its mesh's gateway only, and has no gateway "
                "key yet (it is not registered)"
            )
        verifier.verify(headers, path, body, self.wall_clock())
