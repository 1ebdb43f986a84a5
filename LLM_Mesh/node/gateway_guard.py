"""Who may ask this node for inference: its mesh's gateway, or (standalone) loopback.

The rules (:mod:`LLM_Mesh.core.gateway_auth` decides the signature part):

registered node (``register = true``, the default)
    ``POST /v1/chat/completions`` and ``/v1/completions`` need the gateway's signature
    with the key pinned from the registry's answer to this node's signed registration
    (``RegistrationAccepted.registry_public_key``), trust on first use: the first key is
    kept in ``$LLM_MESH_HOME/gateway.pin`` (``node/gateway_pin.py``) and a later answer
    naming another key (a re-registration, a restart) is refused and logged with both
    fingerprints, unless its ``key_rotation`` statement is the pinned key's signature
    naming the answer's key (``core/key_rotation.py``: a rotated ``registry.key``), or its
    ``key_rotations`` chain leads there from the pinned key, each key signing the next
    (``core/key_chain.py``: several rotations, at most 16): then the new key is pinned (the
    file replaced) and logged with both fingerprints; a refusal's WARNING says why no
    signed rotation leads to the key (none sent: a lost ``registry.key``; a forged link, a
    loop, a chain over the bound) and names the operator's command;
    ``llm-mesh node keys forget-gateway`` removes the pin and the next
    registration pins again. The same rule says which key's 403 ``revoked`` the agent
    honours (:attr:`GatewayGuard.trusted_key`, ``core/revocation_proof.py``): the pin's, or,
    for a learned pin, a key the answer's signed chain leads to from it. An answer without a key changes nothing. node.toml's
    ``registry_public_key`` pins a key from the start instead, and then no answer can
    replace it, a rotation statement included (the operator's pin: the operator moves
    it): no trust on first use over plain HTTP. Without either, a node whose registry URLs
    include plain http to another machine does not start (:meth:`GatewayGuard.check_first_use`,
    ``core/first_use.py``: anyone on the path could answer first) unless its operator opts
    in (``allow_http_first_use``, a WARNING); nor does it learn a key there later (a pin
    forgotten while it runs). Loopback
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

Everything the headers and the peer decide is refused before a byte of the body is read
(:meth:`GatewayGuard.precheck`: the standalone rules, no key yet, and
:meth:`GatewayVerifier.precheck <LLM_Mesh.core.gateway_auth.GatewayVerifier.precheck>`);
only then does ``node/app.py`` read the body and :meth:`GatewayGuard.check_body` verify its
MAC or signature (found 2026-12-03: anyone's request was read, up to ``max_body_bytes``,
16 MiB, and hashed first). With the gateway's ``X-Mesh-Body-SHA256`` the MAC or signature is
verified in the pre-check instead, over the declared SHA-256, and the body read after it
must have that SHA-256 (found 2026-12-03: forged headers with a random tag were read and
hashed before the tag could be checked); once the registry's answer (a registration's or a heartbeat's,
:meth:`GatewayGuard.heard`) says its gateway sends the header (``gateway_body_sha256``), a
request without it is refused unread (until an answer says ``false``, one WARNING, when every
registry URL is https or loopback; over plain http the node keeps requiring it until it
restarts) (``core/gateway_auth.py``: "The tag before the body"). Its body limit refuses a
declared ``Content-Length`` over the limit when the route reads the body
(``BodyLimit(on_read=True)``), so a stranger's 401 comes first there too.

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
from pathlib import Path
from typing import Any

from LLM_Mesh.core.b64url import ed25519_key, ed25519_key_problem, encode
from LLM_Mesh.core.browser_origin import loopback_refusal
from LLM_Mesh.core.first_use import (
    PRINT_KEY_COMMAND,
    FirstUse,
    decide_first_use,
    opted_in_warning,
    refusal,
)
from LLM_Mesh.core.gateway_auth import HDR_BODY_SHA256, GatewayHeaders, GatewayVerifier
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.core.key_chain import rotation_path
from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.core.revocation_proof import TrustedKey
from LLM_Mesh.errors import BadSignature, MeshError
from LLM_Mesh.logs import log_text
from LLM_Mesh.node.gateway_pin import FORGET_COMMAND, read_pin, replace_pin

log = logging.getLogger("LLM_Mesh.node.gateway")

INFERENCE_PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
_NO_KEY = (
    "this node serves inference to its mesh's gateway only, and has no gateway key yet (it "
    "is not registered)"
)


def _fingerprint(key: str) -> str:
    """The registry id a key gives (a fingerprint of it), or ``unusable key``."""
    try:
        return GatewayVerifier(key, "-").registry_id
    except MeshError:
        return "(unusable key)"


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
        pin_file: Path | None = None,
    ) -> None:
        self.node_id = node_id
        self.local_names = local_names  # Host names taken for this machine (standalone)
        self.registering = registering
        self.wall_clock = wall_clock
        self.refused = 0
        # node.toml ``registry_public_key``: pinned now, never replaced (ValueError if bad);
        # given in base64url (what ``llm-mesh registry public-key`` prints) or base64, kept
        # as the registry sends it (base64url, no padding)
        if configured_key is not None:
            raw = ed25519_key(configured_key)
            if raw is None:
                raise ValueError(
                    f"registry_public_key {ed25519_key_problem(configured_key)}; the "
                    "registry's is what `llm-mesh registry public-key` prints on its machine"
                )
            configured_key = encode(raw)
        self.configured_key = configured_key
        self.verifier: GatewayVerifier | None = None
        # this process's X25519 key: sent in the signed registration (never stored)
        self.kx: NodeKx | None = NodeKx() if registering else None
        if configured_key is not None:
            try:
                self.verifier = GatewayVerifier(configured_key, node_id)
            except MeshError as exc:
                raise ValueError(f"registry_public_key: {exc}") from None
        # may a key be learned from an answer (check_first_use: not over plain http to
        # another host unless the operator opted in)
        self.may_learn = True
        # the registry URLs whose answers anyone on the path can forge (plain http to
        # another host): no answer relaxes the SHA-256 requirement while there is one
        self.exposed: tuple[str, ...] = ()
        self._kept_digest: str | None = None  # a relaxation refused (logged) for this id
        # trust on first use: the learned key (None: none yet); kept in ``pin_file``
        self.pin_file = pin_file if configured_key is None and registering else None
        self.learned_key: str | None = None
        if self.pin_file is not None:
            try:
                self.learned_key = read_pin(self.pin_file)
            except OSError as exc:
                raise ValueError(f"the gateway pin is unreadable: {exc}") from None
        if self.learned_key is not None:
            try:
                self.verifier = GatewayVerifier(self.learned_key, node_id)
            except MeshError as exc:
                raise ValueError(
                    f"{self.pin_file}: not a gateway key ({exc}); remove it with {FORGET_COMMAND}"
                ) from None

    def check_first_use(self, registry_urls: tuple[str, ...], *, allowed: bool) -> None:
        """Before registering with ``registry_urls``: raise ``ValueError`` (how to fix it)
        when this node has no pinned key and would learn one over plain http from another
        host without its operator's ``allowed``; WARN when it was allowed."""
        decision = decide_first_use(registry_urls, pinned=self.verifier is not None,
                                    allowed=allowed)  # fmt: skip
        self.exposed = decision.exposed
        self.may_learn = allowed or not decision.exposed
        if decision.verdict is FirstUse.REFUSED:
            raise ValueError(refusal(decision.exposed))
        if decision.verdict is FirstUse.OPTED_IN:
            log.warning("%s", opted_in_warning(decision.exposed))

    @property
    def registry_id(self) -> str | None:
        return self.verifier.registry_id if self.verifier else None

    @property
    def trusted_key(self) -> TrustedKey | None:
        """The registry key a 403 ``revoked`` must be signed by (``core/revocation_proof.py``),
        or by a key the answer's signed rotations lead to from it (as :meth:`pin` follows
        them) when it was learned; node.toml's is the operator's pin: that key alone."""
        if self.verifier is None:
            return None
        return TrustedKey(self.verifier.public_key, follows_rotations=self.configured_key is None)

    @property
    def kx_public_key(self) -> str | None:
        """This node's X25519 public key (``NodeRegistration.gateway_kx_key``)."""
        return self.kx.public_key if self.kx is not None else None

    @property
    def has_session(self) -> bool:
        return self.verifier is not None and self.verifier.session_key is not None

    def pin(self, accepted: Mapping[str, Any]) -> None:
        """Pin the gateway key from a ``RegistrationAccepted`` body: the first one is
        learned (and kept in ``pin_file``); another is refused while a key is pinned (the
        same key keeps its replay cache); then agree the session key the answer offers,
        if the pinned key signed it."""
        key = accepted.get("registry_public_key")
        if not isinstance(key, str) or not key:
            then = (
                "the pinned key stays"
                if self.verifier is not None
                else "this node refuses every inference request until it registers with "
                "one that does"
            )
            log.error("the registry's answer carries no gateway key (an older registry?): %s", then)
            return
        if self.verifier is None or self.verifier.public_key != key:
            pinned = self.configured_key or self._learned()
            if pinned is None and not self.may_learn:
                log.error(
                    "the registry answered with gateway key %s, but this node has no pinned "
                    "key and does not learn one over plain http from another machine (%s): "
                    "its requests will be refused. Pin registry_public_key in node.toml "
                    "(`%s` on the registry's machine prints it), use https, or set "
                    "allow_http_first_use = true",
                    _fingerprint(key),
                    log_text(", ".join(self.exposed), 400),
                    PRINT_KEY_COMMAND,
                )
                return
            path: list[str] = []
            why = ""
            if pinned is not None and pinned != key and self.configured_key is None:
                path, why = rotation_path(accepted, pinned, key)
            rotated = bool(path)
            if pinned is not None and pinned != key and not rotated:
                self._refuse(key, pinned, why)
                return
            try:
                verifier = GatewayVerifier(key, self.node_id)
            except MeshError as exc:
                log.error("the registry's gateway key is unusable: %s", log_text(exc))
                return
            self.verifier = verifier
            if rotated and len(path) > 2:
                log.info(
                    "the registry's key was rotated %d times: gateway %s (pinned) signed the "
                    "move to gateway %s, and each key the next, to gateway %s, pinned now; "
                    "the old keys' requests are refused",
                    len(path) - 1,
                    _fingerprint(path[0]),
                    _fingerprint(path[1]),
                    verifier.registry_id,
                )
            elif rotated and pinned is not None:
                log.info(
                    "the registry's key was rotated: gateway %s (pinned) signed the move to "
                    "gateway %s, pinned now; the old key's requests are refused",
                    _fingerprint(pinned),
                    verifier.registry_id,
                )
            else:
                log.info("pinned gateway %s", verifier.registry_id)
        if self.configured_key is None:
            self._learn(key)
        self._agree(self.verifier, accepted)
        self._require_digest(self.verifier, accepted)

    def _learned(self) -> str | None:
        """The learned pin: the file's (the operator may have removed it) or, without
        one, this process's."""
        if self.pin_file is None:
            return self.learned_key
        try:
            return read_pin(self.pin_file)
        except OSError as exc:
            log.error("%s is unreadable (%s): the pinned key stays", self.pin_file, exc)
            return self.learned_key or ""

    def _learn(self, key: str) -> None:
        """Keep ``key`` as the pin (again, if the operator removed the file meanwhile)."""
        self.learned_key = key
        if self.pin_file is None:
            return
        try:
            # none (forgotten), or a rotation the pinned key signed: ``pin`` checked it
            if read_pin(self.pin_file) != key:
                replace_pin(self.pin_file, key)
        except OSError as exc:  # kept for this process only
            log.error("cannot keep the gateway pin in %s: %s", self.pin_file, exc)
            self.pin_file = None

    def _refuse(self, key: str, pinned: str, why: str = "") -> None:
        source = (
            "registry_public_key in the configuration pins"
            if self.configured_key is not None
            else f"this node pinned (trust on first use, {self.pin_file or 'this process'})"
        )
        log.warning(
            "the registry answered with gateway key %s (%s), but %s %s (%s): its requests "
            "will be refused (another registry, or someone on the path)%s. If the "
            "registry's key was rotated, accept the new one: %s%s",
            _fingerprint(key),
            log_text(key, 100),
            source,
            _fingerprint(pinned),
            log_text(pinned, 100),
            f"; no signed rotation leads to it: {log_text(why, 400)}" if why else "",
            "set registry_public_key in node.toml"
            if self.configured_key is not None
            else FORGET_COMMAND,
            "" if self.configured_key is not None else " (then it pins at the next registration)",
        )

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

    def heard(self, answer: Mapping[str, Any]) -> None:
        """A heartbeat's answer: its ``gateway_body_sha256``, when it names the pinned
        gateway (another id: the agent registers again and :meth:`pin` decides), as a
        registration's is read (found 2026-12-04: only the registration's answer was, so a
        node registered with an older registry, or whose answer was lost, never learnt it)."""
        verifier = self.verifier
        if verifier is not None and answer.get("registry_id") == verifier.registry_id:
            self._require_digest(verifier, answer, heartbeat=True)

    def _require_digest(
        self, verifier: GatewayVerifier, accepted: Mapping[str, Any], *, heartbeat: bool = False
    ) -> None:
        """The answer says the gateway sends the body's SHA-256: require it from now on (for
        this pinned key; a later answer without it, an older registry, does not undo it);
        says it does not (``false``: a registry rolled back): accept requests without it
        again, their tag checked with the body, with one warning, but only when every
        registry URL is authenticated by its transport (https, or loopback): the answer
        carries nothing the gateway's key signs, and over plain http to another host anyone
        on the path could say ``false`` (found 2026-12-04, review: a fake registry turned the
        unread refusal back into the read-first check); there it stays required, one
        warning, as for an answer without the field."""
        said = accepted.get("gateway_body_sha256")
        if said is True and not verifier.require_digest:
            verifier.require_digest = True
            log.info("gateway %s sends %s: a request without it is refused unread",
                     verifier.registry_id, HDR_BODY_SHA256)  # fmt: skip
        elif said is False and verifier.require_digest and self.exposed:
            if self._kept_digest != verifier.registry_id:  # once, not every heartbeat
                self._kept_digest = verifier.registry_id
                log.warning(
                    "the registry says gateway %s no longer sends %s (rolled back?), but "
                    "over plain http (%s) anyone on the path can say that: this node still "
                    "requires it; restart the node to serve a gateway that does not send it",
                    verifier.registry_id,
                    HDR_BODY_SHA256,
                    log_text(", ".join(self.exposed), 400),
                )
        elif said is False and verifier.require_digest:
            verifier.require_digest = False
            log.warning(
                "the registry says gateway %s no longer sends %s (rolled back?): this node "
                "accepts requests without it again, their signature checked with the body",
                verifier.registry_id,
                HDR_BODY_SHA256,
            )
        elif verifier.require_digest and said is None and not heartbeat:
            log.warning(
                "the registry's answer no longer says its gateway sends %s (an older "
                "registry?): this node still requires it from gateway %s; restart the node "
                "to serve a gateway that does not send it",
                HDR_BODY_SHA256,
                verifier.registry_id,
            )

    def check(self, headers: Mapping[str, str], client_host: str | None, path: str,
              body: bytes) -> None:  # fmt: skip
        """Raise 401 unless this inference request may be served (see the module docstring):
        :meth:`precheck`, then :meth:`check_body`."""
        self.check_body(self.precheck(headers, client_host, path), path, body, client_host)

    def precheck(
        self, headers: Mapping[str, str], client_host: str | None, path: str
    ) -> GatewayHeaders | None:
        """Raise 401 for what the headers and the peer alone refuse, before a byte of the
        body is read (found 2026-12-03: the body, up to ``max_body_bytes``, was read and
        hashed first, for anyone); ``None`` when nothing more is to be checked (a standalone
        node's loopback client), else the gateway headers for :meth:`check_body`. With the
        body's SHA-256 in the headers the MAC or signature is checked here (``path``: the
        endpoint it is for)."""
        try:
            return self._precheck(headers, client_host, path)
        except MeshError as exc:
            self._refusal(client_host, exc)
            raise

    def check_body(self, pre: GatewayHeaders | None, path: str, body: bytes,
                   client_host: str | None = None) -> None:  # fmt: skip
        """Raise 401 unless the body's MAC or signature verifies (``pre``: :meth:`precheck`'s)."""
        if pre is None:
            return
        verifier = self.verifier
        try:
            if verifier is None:  # forgotten while the body arrived
                raise BadSignature(_NO_KEY)
            verifier.check_body(pre, path, body, self.wall_clock())
        except MeshError as exc:
            self._refusal(client_host, exc)
            raise

    def _refusal(self, client_host: str | None, exc: MeshError) -> None:
        self.refused += 1
        log.debug("refused a request from %s: %s", client_host, exc)

    def _precheck(
        self, headers: Mapping[str, str], client_host: str | None, path: str
    ) -> GatewayHeaders | None:
        if not self.registering:
            if is_loopback(client_host):
                refused = loopback_refusal(headers, self.local_names)
                if refused is None:
                    return None
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
            raise BadSignature(_NO_KEY)
        return verifier.precheck(headers, self.wall_clock(), path)
