"""Which node URLs and addresses the registry may connect to (no SSRF). Pure: no DNS, no I/O.

A node's advertised URL is parsed strictly (:func:`parse_node_url`): scheme
``http``/``https``, a host, an optional port and path; no userinfo, query,
fragment, backslash, percent sign or whitespace, so every HTTP library reads
the same host out of it. A host whose last label is numeric must be an IPv4
address in one of the spellings the C resolver's ``inet_aton`` accepts
(``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``: all 127.0.0.1, as
``socket.getaddrinfo`` answers them on glibc); it is read as that address, and
refused unless written as the canonical dotted quad (aiohttp refuses the other
spellings too). IPv6 literals go in brackets, without a zone id.

:func:`address_refusal` says why an address is not one the registry may call,
or ``None`` for a global address: loopback, private, link-local, unspecified,
multicast, reserved, shared (100.64/10), site-local and anything
``ipaddress`` does not call global; IPv6 addresses that embed an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, IPv4-translated,
6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo) are judged by the embedded
address as well. DNS happens at the edge
(:mod:`LLM_Mesh.registry.address_pins`); every address a name resolves to is
judged here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from LLM_Mesh.core.validation import ascii_digits

__all__ = [
    "LOOPBACK",
    "IPAddress",
    "NodeUrl",
    "NodeUrlError",
    "address_refusal",
    "addresses_refusal",
    "inet_aton",
    "parse_address",
    "parse_node_url",
]

IPAddress = IPv4Address | IPv6Address

#: the refusal code of ``127.0.0.0/8`` and ``::1`` (and only those): what a registry that
#: lets nodes on its own machine join allows (:func:`addresses_refusal`'s ``allow``)
LOOPBACK = "loopback"

_URL = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>\[[^\]/]*\]|[^:/\[\]]*)"
    r"(?::(?P<port>[0-9]*))?"
    r"(?P<path>/.*)?",
    re.DOTALL,
)
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/-]*")
_DEFAULT_PORT = {"http": 80, "https": 443}

_SHARED = IPv4Network("100.64.0.0/10")
_V4_COMPATIBLE = IPv6Network("::/96")
_V4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
_SITE_LOCAL = IPv6Network("fec0::/10")


class NodeUrlError(ValueError):
    """A node URL the registry will not use; ``reason`` is a short code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class NodeUrl:
    """A node URL, parsed.

    ``host`` is lower-case, without brackets (how HTTP clients hand it to a
    resolver); ``ip`` is set when the host is an address literal; ``prefix`` is
    the URL as written up to the end of its authority (what every request URL
    to this node starts with); ``origin`` is ``scheme://host:port``, normalised.
    """

    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    prefix: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def inet_aton(host: str) -> IPv4Address | None:
    """``host`` read as ``inet_aton`` reads it (1-4 parts, hex/octal/decimal), else ``None``."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base, charset = part[2:], 16, "0123456789abcdefABCDEF"
        elif len(part) > 1 and part[0] == "0":
            digits, base, charset = part[1:], 8, "01234567"
        else:
            digits, base, charset = part, 10, "0123456789"
        if part == "" or any(c not in charset for c in digits):
            return None
        values.append(int(digits, base) if digits else 0)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return IPv4Address(number)


def _numeric_label(label: str) -> bool:
    if label[:2] in ("0x", "0X"):
        return all(c in "0123456789abcdefABCDEF" for c in label[2:])
    return ascii_digits(label)


def parse_address(text: str) -> IPAddress:
    """An address as a resolver returns it (``ValueError`` if it is not one)."""
    return ipaddress.ip_address(text)


def parse_node_url(url: str) -> NodeUrl:
    """Parse a node's advertised URL strictly; :class:`NodeUrlError` names what is wrong."""
    scheme_text, sep, rest = url.partition("://")
    if not sep or scheme_text not in _DEFAULT_PORT:
        raise NodeUrlError("url: the scheme must be http or https (lower case)", "scheme")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        raise NodeUrlError(
            "url: user names and passwords are not allowed in a node URL", "userinfo"
        )
    if any(c.isspace() or c in "\\%?#" for c in url):
        if "%" in authority and authority.startswith("["):
            raise NodeUrlError("url: IPv6 zone ids are not allowed in a node URL", "zone_id")
        raise NodeUrlError(
            "url: whitespace, '\\', '%', '?' and '#' are not allowed in a node URL", "malformed"
        )
    m = _URL.fullmatch(url)
    if m is None:
        raise NodeUrlError("url: not an http(s)://host[:port][/path] URL", "malformed")
    raw_host, path = m.group("host"), m.group("path") or ""
    if not _PATH.fullmatch(path):
        raise NodeUrlError("url: the path has characters a node URL may not have", "malformed")
    scheme = m.group("scheme")
    port_text = m.group("port")
    if port_text is not None and not (port_text and 1 <= int(port_text) <= 65535):
        raise NodeUrlError("url: the port must be 1-65535", "malformed")
    port = int(port_text) if port_text else _DEFAULT_PORT[scheme]
    prefix = url[: m.end("port") if port_text is not None else m.end("host")]
    ip: IPAddress | None
    if raw_host.startswith("["):
        try:
            ip = IPv6Address(raw_host[1:-1])
        except ValueError:
            raise NodeUrlError("url: not an IPv6 address in brackets", "malformed") from None
        return NodeUrl(scheme, raw_host[1:-1].lower(), port, ip, prefix)
    host = raw_host.lower()
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not host or len(host) > 253 or not all(labels):
        raise NodeUrlError("url: the host is empty or has an empty label", "malformed")
    if _numeric_label(labels[-1]):
        ip = inet_aton(".".join(labels))
        if ip is None:
            raise NodeUrlError(
                f"url: {raw_host!r} is neither a host name nor an IPv4 address", "malformed"
            )
        return NodeUrl(scheme, host, port, ip, prefix)
    if not all(_NAME.fullmatch(label) for label in labels):
        raise NodeUrlError(
            "url: a host name has letters, digits, '-' and '_' only (IDNs in their xn-- form)",
            "malformed",
        )
    return NodeUrl(scheme, host, port, None, prefix)


def _embedded_v4(addr: IPv6Address) -> tuple[IPv4Address, str] | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, "IPv4-mapped"
    if addr.sixtofour is not None:
        return addr.sixtofour, "6to4"
    if addr.teredo is not None:
        return addr.teredo[1], "Teredo"
    low = IPv4Address(int(addr) & 0xFFFFFFFF)
    if any(addr in net for net in _NAT64):
        return low, "NAT64"
    if addr in _V4_TRANSLATED:
        return low, "IPv4-translated"
    if addr in _V4_COMPATIBLE and int(addr) > 1:
        return low, "IPv4-compatible"
    return None


def _own_refusal(addr: IPAddress) -> str | None:
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return LOOPBACK
    if addr.is_link_local:
        return "link_local"
    if addr.is_multicast:
        return "multicast"
    if isinstance(addr, IPv4Address) and addr in _SHARED:
        return "shared"
    if isinstance(addr, IPv6Address) and addr in _SITE_LOCAL:
        return "site_local"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "not_global"
    return None


def address_refusal(addr: IPAddress) -> str | None:
    """Why the registry must not connect to ``addr`` (a short code), or ``None`` if it is global."""
    if isinstance(addr, IPv6Address):
        if addr.scope_id:
            return "zone_id"
        embedded = _embedded_v4(addr)
        if embedded is not None:
            inner = _own_refusal(embedded[0])
            if inner is not None:
                return f"{inner} ({embedded[1]})"
            if embedded[1] in ("IPv4-compatible", "IPv4-translated"):
                return f"not_global ({embedded[1]})"  # deprecated or never routed
            if embedded[1] in ("IPv4-mapped", "NAT64"):
                return None  # reaches exactly that global IPv4 address
    return _own_refusal(addr)


def addresses_refusal(
    addrs: list[IPAddress], allow: Collection[str] = ()
) -> tuple[IPAddress, str] | None:
    """The first address of ``addrs`` that must not be called, with why; ``None`` if all global
    (or refused only for a reason in ``allow``).

    A name must resolve only to global addresses: one private answer among public
    ones is refused too (the client could pick it). ``allow`` holds refusal codes a
    registry accepts anyway, matched whole: ``{"loopback"}`` (``llm-mesh up
    --allow-local-nodes``, ``registry serve --allow-loopback-nodes``) lets ``127.0.0.0/8``
    and ``::1`` through and nothing else -- not ``loopback (IPv4-mapped)`` nor a 6to4 or
    NAT64 address that embeds a loopback one (those leave the machine, or may), not
    ``0.0.0.0``, private, link-local (metadata) or any other range.
    """
    for addr in addrs:
        reason = address_refusal(addr)
        if reason is not None and reason not in allow:
            return addr, reason
    return None
