"""TLS certificate fingerprints: how they are written, compared and checked (pure).

A node with a self-signed certificate is authenticated by its certificate's
SHA-256 fingerprint (over the DER bytes), carried in its signed registration
(``NodeRegistration.tls_fingerprint``) and pinned by the gateway. On the wire
and in the store it is 64 lower-case hex digits; people see it as upper-case
pairs joined by ``:`` (as ``openssl x509 -fingerprint -sha256`` prints it).
Either spelling, with or without a ``sha256:`` prefix, is accepted.

The registry's transport rule for node URLs (:func:`node_tls_refusal`,
:class:`NodeTransport`): prompts and answers travel between the gateway and a node, so a
node on another machine must serve https unless the registry's operator opted out
(``registry serve --allow-plain-http-nodes``, a private network or a lab); a node on the
registry's own machine (``127.0.0.0/8``, ``::1``, ``localhost``) may serve plain http, and so
may an ``http://`` origin the operator named one by one (``--allow-private-node URL``:
``NodeTransport.plain_http_origins``; ``LocalMesh`` names its own node so on a LAN address).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address

from LLM_Mesh.core.netguard import NodeUrlError, parse_node_url

__all__ = [
    "FINGERPRINT_PATTERN",
    "NodeTransport",
    "fingerprint_of_der",
    "loopback_url",
    "node_tls_refusal",
    "parse_fingerprint",
    "show_fingerprint",
    "url_origin",
]

FINGERPRINT_PATTERN = r"^(sha256:)?([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_fingerprint(text: str) -> str:
    """``"AB:CD:..."``, ``"abcd..."`` or ``"sha256:..."`` → 64 lower-case hex digits.

    ``ValueError`` for anything that is not a SHA-256 digest.
    """
    raw = text.strip().lower()
    if raw.startswith("sha256:"):
        raw = raw[len("sha256:") :]
    raw = raw.replace(":", "")
    if not _HEX64.match(raw):
        raise ValueError(
            "a TLS fingerprint is a SHA-256 digest: 64 hex digits (pairs may be :-joined)"
        )
    return raw


def fingerprint_of_der(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER-encoded certificate (64 lower-case hex digits)."""
    return hashlib.sha256(der).hexdigest()


def show_fingerprint(fingerprint: str) -> str:
    """As people compare it: ``"AB:CD:..."`` (``openssl x509 -fingerprint -sha256``)."""
    fp = parse_fingerprint(fingerprint)
    return ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()


def _loopback_address(text: str) -> bool:
    try:
        ip = ip_address(text.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def loopback_url(url: str, addresses: Sequence[str] | None = None) -> bool:
    """Whether ``url``'s host is this machine's loopback: an address in ``127.0.0.0/8``,
    ``::1`` (IPv4-mapped too) or the name ``localhost``. A URL that does not parse is not.

    ``addresses``: what the registry resolved the host to (``AddressPins.check``); a name
    is loopback only if it resolved to loopback addresses alone (a ``localhost`` that a
    hosts file points elsewhere is not), whatever its spelling."""
    try:
        node = parse_node_url(url)
    except NodeUrlError:
        return False
    if node.ip is None:
        if addresses is not None:
            return bool(addresses) and all(_loopback_address(a) for a in addresses)
        return node.host == "localhost"
    return _loopback_address(str(node.ip))


def url_origin(url: str) -> str | None:
    """``url``'s normalised ``scheme://host:port`` (:func:`parse_node_url`), or ``None``."""
    try:
        return parse_node_url(url.rstrip("/")).origin
    except NodeUrlError:
        return None


def node_tls_refusal(
    url: str,
    fingerprint: str | None,
    *,
    require_tls: bool,
    allow_plain_http: bool = False,
    plain_http_origins: frozenset[str] = frozenset(),
    addresses: Sequence[str] | None = None,
) -> str | None:
    """The reason a registry refuses a node's URL/fingerprint pair, or ``None``.

    ``plain_http``: the registry requires TLS and the URL is ``http://``;
    ``plain_http_remote``: an ``http://`` URL off loopback (:func:`loopback_url`) and the
    registry did not allow plain-HTTP nodes (``allow_plain_http``, off by default: prompts
    would cross the network in clear) nor named its origin (``plain_http_origins``, normalised
    by :func:`url_origin`); ``fingerprint_without_tls``: a fingerprint for an
    ``http://`` URL (nothing to pin).
    """
    https = url.lower().startswith("https://")
    if require_tls and not https:
        return "plain_http"
    # the operator's own origins, named one by one, parsed last: only for such a URL (the
    # replicas' node poll asks this of every stored node)
    if (
        not https
        and not allow_plain_http
        and not loopback_url(url, addresses)
        and not (plain_http_origins and url_origin(url) in plain_http_origins)
    ):
        return "plain_http_remote"
    if fingerprint is not None and not https:
        return "fingerprint_without_tls"
    return None


@dataclass(frozen=True)
class NodeTransport:
    """A registry's transport rule (its ``require_tls`` and ``allow_plain_http_nodes``
    settings), for registrations and for nodes read back from the store alike."""

    require_tls: bool = False
    allow_plain_http: bool = False
    plain_http_origins: frozenset[str] = frozenset()  # ``http://`` origins named one by one

    @classmethod
    def naming(
        cls, require_tls: bool, allow_plain_http: bool, origins: tuple[str, ...]
    ) -> NodeTransport:
        """The rule with the ``http://`` ones of ``origins`` (``--allow-private-node``)
        accepted in plain http; an origin that does not parse is left out (the address
        pins refuse it at start)."""
        named = {url_origin(o) for o in origins if o.lower().startswith("http://")}
        return cls(require_tls, allow_plain_http, frozenset(o for o in named if o is not None))

    def refusal(
        self, url: str, fingerprint: str | None = None, addresses: Sequence[str] | None = None
    ) -> str | None:
        """:func:`node_tls_refusal` under this rule (``addresses``: the host's, resolved)."""
        return node_tls_refusal(
            url,
            fingerprint,
            require_tls=self.require_tls,
            allow_plain_http=self.allow_plain_http,
            plain_http_origins=self.plain_http_origins,
            addresses=addresses,
        )
