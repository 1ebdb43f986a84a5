"""TLS certificate fingerprints: how they are written, compared and checked (pure).

A node with a self-signed certificate is authenticated by its certificate's
SHA-256 fingerprint (over the DER bytes), carried in its signed registration
(``NodeRegistration.tls_fingerprint``) and pinned by the gateway. On the wire
and in the store it is 64 lower-case hex digits; people see it as upper-case
pairs joined by ``:`` (as ``openssl x509 -fingerprint -sha256`` prints it).
Either spelling, with or without a ``sha256:`` prefix, is accepted.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "FINGERPRINT_PATTERN",
    "fingerprint_of_der",
    "node_tls_refusal",
    "parse_fingerprint",
    "show_fingerprint",
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


def node_tls_refusal(url: str, fingerprint: str | None, *, require_tls: bool) -> str | None:
    """The reason a registry refuses a node's URL/fingerprint pair, or ``None``.

    ``plain_http``: the registry requires TLS and the URL is ``http://``;
    ``fingerprint_without_tls``: a fingerprint for an ``http://`` URL (nothing to pin).
    """
    https = url.lower().startswith("https://")
    if require_tls and not https:
        return "plain_http"
    if fingerprint is not None and not https:
        return "fingerprint_without_tls"
    return None
