"""Gateway → node authentication: the pure rules (no I/O; the clock is passed in).

A node serves inference to its mesh's gateway only. The registry (which is the
gateway) holds its own Ed25519 key (``$LLM_MESH_HOME/registry.key``); its public key
and id travel in :class:`~LLM_Mesh.core.schemas.RegistrationAccepted`, the answer to
the node's signed registration, and the node pins them. Every request the gateway
forwards is signed over canonical bytes (domain-separated from every node message
by its kind)::

    b"llm-mesh/v1/gateway-request" \\n registry_id \\n node_id \\n request_id \\n path
      \\n decimal(ts_ms) \\n hex(sha256(body))

``registry_id`` is derived from the registry's public key (as a node id is from a
node's), ``node_id`` the node the request is for (a node cannot pass a request it was
sent on to another node), ``request_id`` the gateway's ``X-Request-Id``, ``path`` the
endpoint (``/v1/chat/completions``; a prefix a reverse proxy strips is not part of it),
``ts_ms`` the gateway's wall clock and the body's SHA-256. Headers:
:data:`HDR_GATEWAY` (registry id), :data:`HDR_GATEWAY_TIME`,
:data:`HDR_GATEWAY_SIGNATURE` (base64url), ``X-Request-Id``, and :data:`HDR_BODY_SHA256`
(the body's SHA-256 as signed, hex: the gateway hashes the body once, for both).

**Session key (the fast path).** Where the gateway and the node agreed a per-node key
at the node's signed registration (:mod:`LLM_Mesh.core.gateway_session`: X25519, HKDF;
no secret in transit), the gateway sends :data:`HDR_GATEWAY_MAC` (base64url
HMAC-SHA256 of the same canonical bytes under that key) instead of the signature: the
same fields, the same clock window, the same replay cache, a hash instead of an
Ed25519 verification on the node. Without an agreed key (a registry that has not heard
the node's X25519 key yet, an older node or registry) it signs as before, and the node
accepts either.

The node refuses (401, OpenAI's error shape) a request without them, a signature
that does not verify with the pinned key (another registry's key, an altered body,
another node's or another endpoint's request), a timestamp beyond ±120 s, and a
request it has already accepted (:class:`ReplayCache`: every accepted message is
remembered until it is too old to be accepted anyway).

**Headers first** (found 2026-12-03: a node read and hashed up to its 16 MiB body limit
for anyone's request before refusing it). Everything that can be refused on the headers
alone is refused before a byte of the body is read: :meth:`GatewayVerifier.precheck`
(missing headers, a malformed timestamp, request id or tag, another gateway's id, a MAC
without a session key, a tag of the wrong length, a timestamp outside the window, a tag
already accepted or a time at or below the replay cache's floor: looked up, not added);
then :meth:`GatewayVerifier.check_body` hashes the body and verifies the MAC or signature
(and adds to the replay cache) with what the pre-check parsed, nothing parsed twice.
:meth:`GatewayVerifier.verify` is the two together.

**The tag before the body** (found 2026-12-03: headers anyone can forge, a public registry
id, a random tag and a fresh timestamp, still made the node read and hash 16 MiB before
the tag could be checked). With :data:`HDR_BODY_SHA256` the pre-check verifies the MAC or
signature over the canonical bytes built with the declared SHA-256, so a forged tag is
refused unread; :meth:`~GatewayVerifier.check_body` then hashes the body and refuses one
whose SHA-256 is not the declared one (its verified tag is remembered: see there). The
tag is checked once, before the body instead of after it. A registry that sends the header
says so in its registration and heartbeat answers (``gateway_body_sha256``), and the node
then refuses a request without it (:attr:`GatewayVerifier.require_digest`, kept for the
pinned key: an answer without it does not undo it; one that says ``false``, a rolled-back
registry, does when every registry URL is https or loopback, not over plain http to another
host, where anyone on the path could say it: ``node/gateway_guard.py``), so leaving the
header out does not bring back the read-first check. Without that (an older registry) a request without
the header is checked as before, body first: its pre-check turns away strangers and stale
or replayed requests, not someone who forges fresh headers. An older node ignores the
header and the answer's field.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from LLM_Mesh.core.gateway_session import (
    encode_kx_key,
    kx_binding_bytes,
    registry_kx_private,
    session_key,
    sign_kx,
)
from LLM_Mesh.core.identity import (
    DOMAIN,
    MAX_CLOCK_SKEW_S,
    MessageKind,
    decode_public_key,
    encode_public_key,
    public_key_of,
)
from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage

__all__ = [
    "HDR_BODY_SHA256",
    "HDR_GATEWAY",
    "HDR_GATEWAY_MAC",
    "HDR_GATEWAY_SIGNATURE",
    "HDR_GATEWAY_TIME",
    "HDR_REQUEST_ID",
    "GatewayHeaders",
    "GatewaySigner",
    "GatewayVerifier",
    "ReplayCache",
    "gateway_bytes",
    "registry_id_for",
]

HDR_GATEWAY = "X-Mesh-Gateway"
HDR_GATEWAY_TIME = "X-Mesh-Gateway-Timestamp"
HDR_GATEWAY_SIGNATURE = "X-Mesh-Gateway-Signature"
HDR_GATEWAY_MAC = "X-Mesh-Gateway-Mac"
HDR_REQUEST_ID = "X-Request-Id"
HDR_BODY_SHA256 = "X-Mesh-Body-SHA256"

_REGISTRY_ID_DOMAIN = b"llm-mesh/registry-id/v1\x00"
_KIND = DOMAIN + MessageKind.GATEWAY_REQUEST.value.encode("ascii")
_MAX_FIELD = 256
_MAX_PREFIXES = 4096  # GatewaySigner's node prefixes kept
_MAC_BYTES = 32  # HMAC-SHA256
_SIGNATURE_BYTES = 64  # Ed25519


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def registry_id_for(raw_public_key: bytes) -> str:
    """The registry's id: ``"registry-" + base32(sha256(domain + key))[:26]``, lower case."""
    if len(raw_public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(_REGISTRY_ID_DOMAIN + raw_public_key).digest()
    return "registry-" + base64.b32encode(digest).decode("ascii")[:26].lower()


def gateway_bytes(
    registry_id: str, node_id: str, request_id: str, path: str, ts_ms: int, body_sha256: str
) -> bytes:
    """The canonical bytes the gateway signs (fixed order, domain-separated)."""
    return _request_bytes(_node_prefix(registry_id, node_id), request_id, path, ts_ms,
                          body_sha256)  # fmt: skip


def _line(name: str, value: str) -> None:
    if not value or "\n" in value or len(value) > _MAX_FIELD:
        raise ValueError(f"{name} must be a non-empty single line")


def _node_prefix(registry_id: str, node_id: str) -> bytes:
    """:func:`gateway_bytes`' first lines, the same for every request to ``node_id``, and
    the newline after them (``ValueError`` for a field that is no single line)."""
    _line("registry id", registry_id)
    _line("node id", node_id)
    return b"\n".join((_KIND, registry_id.encode("utf-8"), node_id.encode("utf-8"), b""))


def _request_bytes(
    prefix: bytes, request_id: str, path: str, ts_ms: int, body_sha256: str
) -> bytes:
    """:func:`gateway_bytes` from its node's :func:`_node_prefix`."""
    _line("request id", request_id)
    _line("path", path)
    return prefix + b"\n".join(
        (
            request_id.encode("utf-8"),
            path.encode("utf-8"),
            str(int(ts_ms)).encode("ascii"),
            body_sha256.encode("ascii"),
        )
    )


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


_Keyed = hmac.HMAC  # an HMAC-SHA256 key set up once (the standard library's)


def _keyed(key: bytes) -> _Keyed:
    """An HMAC-SHA256 under ``key`` with no data yet, copied for each message
    (:func:`_mac_from`)."""
    return hmac.new(key, digestmod="sha256")


def _mac_from(keyed: _Keyed, data: bytes) -> bytes:
    """``_mac(key, data)`` from ``_keyed(key)``: the same bytes, without looking up the
    digest by name in OpenSSL and setting up the key again for every message (on the
    gateway's first-token path, a cold lookup costs about 0.05 ms: docs/benchmarks.md).
    The standard library's HMAC, not RFC 2104 written out here (tried 2026-12-05 for ~1 µs
    a request: no crypto by hand)."""
    h = keyed.copy()
    h.update(data)
    return h.digest()


class GatewaySigner:
    """The registry's side: authenticates each forwarded request (``wall_clock``: unix
    seconds) with the node's session key when one is agreed, else its Ed25519 signature."""

    def __init__(self, key: Ed25519PrivateKey, wall_clock: Callable[[], float]) -> None:
        self._key = key
        self.wall_clock = wall_clock
        raw = public_key_of(key)
        self.public_key = encode_public_key(raw)
        self.registry_id = registry_id_for(raw)
        self._kx = registry_kx_private(key)
        self.kx_public_key = encode_kx_key(self._kx.public_key())
        self._sessions: dict[str, tuple[str, bytes]] = {}  # node id -> (its X25519 key, key)
        self._keyed: dict[str, _Keyed] = {}  # node id -> _keyed(its session key)
        # node id -> _node_prefix(registry id, it): the signed bytes' lines of every request
        # to it, made once (at most _MAX_PREFIXES kept: node ids come and go)
        self._prefixes: dict[str, bytes] = {}

    def agree(self, node_id: str, node_kx: str | None) -> bool:
        """Hold a session key with ``node_id`` for its X25519 key ``node_kx`` (from its
        signed registration or heartbeat; computed once per key). ``False`` (and no key:
        its requests are signed instead) when there is none or it is not usable."""
        if not node_kx:
            self.forget(node_id)
            return False
        held = self._sessions.get(node_id)
        if held is not None and held[0] == node_kx:
            return True
        try:
            binding = kx_binding_bytes(self.registry_id, node_id, node_kx, self.kx_public_key)
            key = session_key(self._kx, node_kx, binding)
        except ValueError:
            self.forget(node_id)
            return False
        self._sessions[node_id] = (node_kx, key)
        self._keyed[node_id] = _keyed(key)
        return True

    def kx_answer(self, node_id: str, node_kx: str | None) -> tuple[str, str] | None:
        """:meth:`agree`, then what the registration's answer carries for the node to
        agree the same key: ``(gateway_kx_key, gateway_kx_signature)``; ``None`` if no key."""
        if not self.agree(node_id, node_kx) or node_kx is None:
            return None
        binding = kx_binding_bytes(self.registry_id, node_id, node_kx, self.kx_public_key)
        return self.kx_public_key, sign_kx(self._key, binding)

    def forget(self, node_id: str) -> None:
        """Drop ``node_id``'s session key (it left): its requests are signed again."""
        self._sessions.pop(node_id, None)
        self._keyed.pop(node_id, None)
        self._prefixes.pop(node_id, None)

    def has_session(self, node_id: str) -> bool:
        return node_id in self._sessions

    def headers(self, node_id: str, request_id: str, path: str, body_sha256: str) -> dict[str, str]:
        """The headers that authenticate one request to ``node_id`` (body given by its hash)."""
        ts_ms = int(self.wall_clock() * 1000)
        prefix = self._prefixes.get(node_id)
        if prefix is None:
            prefix = _node_prefix(self.registry_id, node_id)
            if len(self._prefixes) >= _MAX_PREFIXES:
                self._prefixes.clear()
            self._prefixes[node_id] = prefix
        data = _request_bytes(prefix, request_id, path, ts_ms, body_sha256)
        keyed = self._keyed.get(node_id)
        if keyed is not None:
            return {
                HDR_GATEWAY: self.registry_id,
                HDR_GATEWAY_TIME: str(ts_ms),
                HDR_GATEWAY_MAC: _b64(_mac_from(keyed, data)),
                HDR_REQUEST_ID: request_id,
                HDR_BODY_SHA256: body_sha256,
            }
        return {
            HDR_GATEWAY: self.registry_id,
            HDR_GATEWAY_TIME: str(ts_ms),
            HDR_GATEWAY_SIGNATURE: _b64(self._key.sign(data)),
            HDR_REQUEST_ID: request_id,
            HDR_BODY_SHA256: body_sha256,
        }


class ReplayCache:
    """Signed messages accepted in the last ``window_s`` (keyed by the hash of their signed
    bytes, so a signature's encoding does not matter), at most ``max_entries``; with the
    tag (MAC or signature bytes) each was accepted with, so that a replay is refused on
    its headers, before its body is read (:meth:`refuses`).

    An entry is dropped once its timestamp is older than the window (such a message is
    refused as stale anyway). When full, the oldest is dropped and every message not
    newer than it is refused from then on, so nothing dropped can be replayed.
    """

    def __init__(self, window_s: float = MAX_CLOCK_SKEW_S, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.window_ms = int(window_s * 1000)
        self.max_entries = max_entries
        self._heap: list[tuple[int, bytes, bytes]] = []  # (ts_ms, key, tag)
        self._seen: set[bytes] = set()
        self._tags: set[bytes] = set()
        self.floor_ms = -1  # messages at or before this time are refused

    def __len__(self) -> int:
        return len(self._seen)

    def refuses(self, tag: bytes, ts_ms: int) -> bool:
        """Whether a message with ``tag`` at ``ts_ms`` is surely refused by :meth:`add`: its
        tag was accepted, or its time is at or below the floor. A look-up (nothing added or
        dropped); an entry past the window may still be here, but so is its time, which
        the window refuses anyway."""
        return ts_ms <= self.floor_ms or tag in self._tags

    def add(self, key: bytes, ts_ms: int, now_ms: int, tag: bytes = b"") -> bool:
        """Remember ``key`` (and ``tag``, the bytes it was accepted with: :meth:`refuses`);
        ``False`` when it was seen (or may have been: below the floor)."""
        heap, seen, tags = self._heap, self._seen, self._tags
        horizon = now_ms - self.window_ms
        while heap and heap[0][0] < horizon:
            _, old, old_tag = heapq.heappop(heap)
            seen.discard(old)
            tags.discard(old_tag)
        if key in seen or ts_ms <= self.floor_ms:
            return False
        while len(heap) >= self.max_entries:
            ts, old, old_tag = heapq.heappop(heap)
            seen.discard(old)
            tags.discard(old_tag)
            self.floor_ms = max(self.floor_ms, ts)
        if ts_ms <= self.floor_ms:
            return False
        heapq.heappush(heap, (ts_ms, key, tag))
        seen.add(key)
        if tag:
            tags.add(tag)
        return True


_NO_SESSION = (
    "this node has agreed no session key with the gateway (it registers again to agree "
    "one): a MAC cannot be checked; the gateway's signature can"
)
_BAD_MAC = (
    "the gateway's MAC does not verify (another node's or an older session key, another "
    "node or endpoint, or the body was altered)"
)
_BAD_SIGNATURE = (
    "the gateway signature does not verify (another key, another node or endpoint, or the "
    "body was altered)"
)
_NO_DIGEST = (
    f"this node's gateway sends {HDR_BODY_SHA256} with every request (its registration "
    "answer said so): a request without it is not the gateway's"
)
_BAD_BODY = (
    f"the body is not the one the gateway signed (its SHA-256 is not {HDR_BODY_SHA256}): "
    "altered on the way"
)


# what GatewayVerifier.precheck parsed from a request's headers, for check_body:
# (registry id, request id, ts_ms, tag: the MAC or the signature decoded, a MAC or not,
# the declared body SHA-256 (hex) and the canonical bytes the tag verified over with it,
# or "" and b"" without HDR_BODY_SHA256: the tag is then checked with the body).
# A plain tuple: a NamedTuple's constructor cost ~0.6 µs of a ~12 µs MAC check.
GatewayHeaders = tuple[str, str, int, bytes, bool, str, bytes]


def _header(headers: Mapping[str, str], name: str) -> str:
    value = (headers.get(name) or "").strip()
    if not value:
        raise BadSignature(
            "this node serves inference to its mesh's gateway only: the request carries no "
            f"gateway signature ({name} is missing); send it to the gateway's /v1 instead"
        )
    return value


class GatewayVerifier:
    """The node's side: the pinned registry key, the session key agreed with it (if
    any), the replay cache, the checks."""

    def __init__(
        self,
        public_key: str,
        node_id: str,
        *,
        max_skew_s: float = MAX_CLOCK_SKEW_S,
        cache: ReplayCache | None = None,
    ) -> None:
        self.key: Ed25519PublicKey = decode_public_key(public_key)
        self.public_key = public_key
        self.registry_id = registry_id_for(_unb64(public_key))
        self.node_id = node_id
        self.max_skew_s = max_skew_s
        self.cache = cache or ReplayCache(window_s=max_skew_s)
        # agreed with this registry key (core/gateway_session.py); None: signatures only
        self.session_key: bytes | None = None
        # the registry announced that its gateway sends HDR_BODY_SHA256
        # (RegistrationAccepted.gateway_body_sha256): a request without it is refused
        self.require_digest = False

    def verify(self, headers: Mapping[str, str], path: str, body: bytes, now_s: float) -> str:
        """Raise 401 unless this is the pinned gateway's fresh, unreplayed MAC (session key)
        or signature of ``body`` for this node and ``path``; the registry id when it is.
        :meth:`precheck`, then :meth:`check_body`."""
        return self.check_body(self.precheck(headers, now_s, path), path, body, now_s)

    def precheck(self, headers: Mapping[str, str], now_s: float, path: str) -> GatewayHeaders:
        """Raise 401 for what the headers alone refuse (module docstring: "Headers first"),
        before the body is read, the MAC or signature over the declared body SHA-256 included
        (:data:`HDR_BODY_SHA256`); else what :meth:`check_body` needs, parsed once."""
        sender = _header(headers, HDR_GATEWAY)
        raw_ts = _header(headers, HDR_GATEWAY_TIME)
        if not ascii_digits(raw_ts) or len(raw_ts) > 18:
            raise BadSignature(f"{HDR_GATEWAY_TIME} must be unix milliseconds")
        request_id = _header(headers, HDR_REQUEST_ID)
        mac_text = (headers.get(HDR_GATEWAY_MAC) or "").strip()
        name = HDR_GATEWAY_MAC if mac_text else HDR_GATEWAY_SIGNATURE
        try:
            tag = _unb64(mac_text or _header(headers, HDR_GATEWAY_SIGNATURE))
        except (ValueError, TypeError):
            raise BadSignature(f"{name} is not base64url") from None
        if sender != self.registry_id:
            raise BadSignature(
                f"request signed for gateway {sender[:80]!r}; this node serves {self.registry_id}"
            )
        if "\n" in request_id or len(request_id) > _MAX_FIELD:  # as gateway_bytes refuses it
            raise BadSignature(
                "malformed gateway request: request id must be a non-empty single line"
            )
        digest = (headers.get(HDR_BODY_SHA256) or "").strip()
        if not digest and self.require_digest:
            raise BadSignature(_NO_DIGEST)
        mac = bool(mac_text)
        if mac:
            if self.session_key is None:
                raise BadSignature(_NO_SESSION)
            if len(tag) != _MAC_BYTES:
                raise BadSignature(_BAD_MAC)
        elif len(tag) != _SIGNATURE_BYTES:
            raise BadSignature(_BAD_SIGNATURE)
        ts_ms = int(raw_ts)
        if abs(ts_ms / 1000.0 - now_s) > self.max_skew_s:
            raise self._stale(ts_ms, now_s)
        if self.cache.refuses(tag, ts_ms):
            raise ReplayedMessage(f"request {request_id[:80]!r} was already served (replayed)")
        if not digest:  # an older gateway: the tag is checked with the body
            return (sender, request_id, ts_ms, tag, mac, "", b"")
        if len(digest) != 64 or not digest.isascii():  # other digits: the tag does not verify
            raise BadSignature(f"{HDR_BODY_SHA256} must be a SHA-256, 64 lower-case hex digits")
        try:
            data = gateway_bytes(sender, self.node_id, request_id, path, ts_ms, digest)
        except ValueError as exc:
            raise BadSignature(f"malformed gateway request: {exc}") from None
        self._check_tag(tag, mac, data)
        return (sender, request_id, ts_ms, tag, mac, digest, data)

    def check_body(self, pre: GatewayHeaders, path: str, body: bytes, now_s: float) -> str:
        """Raise 401 unless ``pre`` (:meth:`precheck`'s) is the pinned gateway's MAC or
        signature of ``body`` for this node and ``path`` (verified by the pre-check over the
        declared SHA-256: then ``body`` must have it), still fresh at ``now_s`` (the body
        took time to arrive) and not accepted before; then remember it (the replay cache).
        The registry id when it is. A body that is not the declared one is refused and its
        verified tag remembered: headers captured on the way make the node read a wrong
        body once, not again and again for the whole window."""
        sender, request_id, ts_ms, tag, mac, digest, data = pre
        if sender != self.registry_id:  # another key pinned while the body arrived
            raise BadSignature(
                f"request signed for gateway {sender[:80]!r}; this node serves {self.registry_id}"
            )
        if data:  # the tag verified over ``digest`` (precheck)
            if hashlib.sha256(body).hexdigest() != digest:
                self.cache.add(hashlib.sha256(data).digest(), ts_ms, int(now_s * 1000), tag)
                raise BadSignature(_BAD_BODY)
        else:
            try:
                data = gateway_bytes(sender, self.node_id, request_id, path, ts_ms,
                                     hashlib.sha256(body).hexdigest())  # fmt: skip
            except ValueError as exc:
                raise BadSignature(f"malformed gateway request: {exc}") from None
            self._check_tag(tag, mac, data)
        if abs(ts_ms / 1000.0 - now_s) > self.max_skew_s:
            raise self._stale(ts_ms, now_s)
        if not self.cache.add(hashlib.sha256(data).digest(), ts_ms, int(now_s * 1000), tag):
            raise ReplayedMessage(f"request {request_id[:80]!r} was already served (replayed)")
        return sender

    def _stale(self, ts_ms: int, now_s: float) -> StaleMessage:
        return StaleMessage(
            f"the gateway's timestamp is {ts_ms / 1000.0 - now_s:+.0f} s from this node's clock "
            f"(at most ±{self.max_skew_s:.0f} s)"
        )

    def _check_tag(self, tag: bytes, mac: bool, data: bytes) -> None:
        """Raise 401 unless ``tag`` is the session key's MAC (``mac``) or the pinned key's
        signature of ``data``."""
        if mac:
            key = self.session_key
            if key is None:
                raise BadSignature(_NO_SESSION)
            if not hmac.compare_digest(tag, _mac(key, data)):
                raise BadSignature(_BAD_MAC)
            return
        try:
            self.key.verify(tag, data)
        except InvalidSignature:
            raise BadSignature(_BAD_SIGNATURE) from None
