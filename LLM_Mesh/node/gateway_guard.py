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
    a pinned key yet (not registered) every inference request is 401. The node's
    X25519 key for this process (:class:`~LLM_Mesh.core.gateway_session.NodeKx`) goes
    in its signed registration; an answer whose key agreement the pinned key signed
    gives a session key, and the gateway's HMAC under it is accepted as its signature is
    (``core/gateway_session.py``); a new pinned key drops the old session key.
standalone node (``register = false``)
    there is no gateway: inference answers loopback clients only, unauthenticated
    (local use, tests), but not a request whose ``Host`` is not a name of this machine
    (a rebound DNS name) nor a browser's from a web page of another site
    (``core/browser_origin.py``; ``local_names``: ``Settings.local_names``); anyone else
    gets 401.

Loopback is the project's one rule for a peer address,
:func:`LLM_Mesh.core.metrics_access.is_loopback` (``/metrics`` and ``core/browser_origin.py``
use it too): an address in ``127.0.0.0/8`` or ``::1``, an IPv4-mapped one
(``::ffff:127.0.0.1``: an IPv4 client of a dual-stack listener) and a scoped one
included; a name (``localhost``, ``127.example``) or ``0.0.0.0`` is not (a peer is an
address, never a name).

Not guarded: ``GET /v1/models`` (what the node serves, public anyway), ``GET
/mesh/health`` (the registry's active checks). ``/mesh/info`` (hardware, counters)
and ``/mesh/admin/*`` answer loopback clients only (``node/app.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from LLM_Mesh.core.browser_origin import loopback_refusal
from LLM_Mesh.core.gateway_auth import GatewayVerifier
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.errors import BadSignature, MeshError
from LLM_Mesh.logs import log_text

log = logging.getLogger("LLM_Mesh.node.gateway")

INFERENCE_PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


class GatewayGuard:
    """The node's gateway check; ``wall_clock`` is unix seconds (injectable)."""

    def __init__(
        self,
        node_id: str,
        *,
        registering: bool,
        wall_clock: Callable[[], float],
        configured_key: str | None = None,
        local_names: tuple[str, ...] = (),
    ) -> None:
        self.node_id = node_id
        self.local_names = local_names  # Host names taken for this machine (standalone)
        self.registering = registering
        self.wall_clock = wall_clock
        self.refused = 0
        # node.toml ``registry_public_key``: pinned now, never replaced (ValueError if bad)
        self.configured_key = configured_key
        self.verifier: GatewayVerifier | None = None
        # this process's X25519 key: sent in the signed registration (never stored)
        self.kx: NodeKx | None = NodeKx() if registering else None
        if configured_key is not None:
            try:
                self.verifier = GatewayVerifier(configured_key, node_id)
            except MeshError as exc:
                raise ValueError(f"registry_public_key: {exc}") from None

    @property
    def registry_id(self) -> str | None:
        return self.verifier.registry_id if self.verifier else None

    @property
    def kx_public_key(self) -> str | None:
        """This node's X25519 public key (``NodeRegistration.gateway_kx_key``)."""
        return self.kx.public_key if self.kx is not None else None

    @property
    def has_session(self) -> bool:
        return self.verifier is not None and self.verifier.session_key is not None

    def pin(self, accepted: Mapping[str, Any]) -> None:
        """Pin the gateway key from a ``RegistrationAccepted`` body (a new key replaces the
        old one and drops its session key; the same key keeps its replay cache), then
        agree the session key the answer offers, if the pinned key signed it."""
        key = accepted.get("registry_public_key")
        if not isinstance(key, str) or not key:
            log.error(
                "the registry's answer carries no gateway key (an older registry?): this "
                "node refuses every inference request until it registers with one that does"
            )
            self.verifier = None
            return
        if self.verifier is None or self.verifier.public_key != key:
            if self.configured_key is not None:
                log.error(
                    "the registry answered with gateway key %s, but registry_public_key in "
                    "the configuration pins %s: its requests will be refused (another "
                    "registry, or someone on the path)",
                    log_text(key, 100),
                    self.configured_key,
                )
                return
            try:
                self.verifier = GatewayVerifier(key, self.node_id)
            except MeshError as exc:
                log.error("the registry's gateway key is unusable: %s", log_text(exc))
                self.verifier = None
                return
            log.info("pinned gateway %s", self.verifier.registry_id)
        self._agree(self.verifier, accepted)

    def _agree(self, verifier: GatewayVerifier, accepted: Mapping[str, Any]) -> None:
        offered = accepted.get("gateway_kx_key")
        if self.kx is None or offered is None:
            return  # an older registry: its signatures only (a key agreed before stays)
        session = self.kx.agree(verifier.key, verifier.registry_id, self.node_id, offered,
                                accepted.get("gateway_kx_signature"))  # fmt: skip
        if session is None:
            log.warning(
                "the registry's key agreement is not signed by gateway %s: this node "
                "accepts its signatures only",
                verifier.registry_id,
            )
            return
        if verifier.session_key != session:
            verifier.session_key = session
            log.info("agreed a session key with gateway %s", verifier.registry_id)

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
                refused = loopback_refusal(headers, self.local_names)
                if refused is None:
                    return
                raise BadSignature(
                    "this node runs without a registry (register = false): it serves "
                    f"programs on this machine, not {refused}"
                )
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
