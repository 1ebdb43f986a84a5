"""What to tell an operator whose registry URL reaches a server it cannot talk to: pure, no I/O.

Two mistakes seen deploying replicas with TLS (``docs/deploy.md``) gave errors that did not
say what was wrong (found 2026-12-03):

- an ``http://`` URL for a replica that serves https (``registry serve --tls-cert``): the
  server drops the plain request, and the error read ``Server disconnected without sending
  a response.`` (the CLI, ``MeshClient``, a node's ``registry unreachable at ...``);
- an ``https://`` URL whose certificate is from a private CA not given to this program:
  ``CERTIFICATE_VERIFY_FAILED``, followed by ``Start one with `llm-mesh up` `` (a registry
  was running; its CA was missing).

A certificate that failed verification names the host, and why as OpenSSL said it: an
unknown CA (give its file), an expired certificate or one for another name (no CA file helps);
never "is a registry running?" (found 2026-12-06, cli36: the CLI's commands said that beside
``CERTIFICATE_VERIFY_FAILED``). node.toml's ``registry_ca`` is named as the home's (found
2026-12-06, newuser36: ``ledger verify``, ``status``, ``ask`` were told "or registry_ca in a
node's node.toml", which they never read; since cli37 every command reaching a registry
reads it, ``cli/common.registry_settings``).

:func:`reach_hint` names the likely fix for such an error, or ``None`` when it has none.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["reach_hint"]

# what an https server answers a plain-http request with, as httpx reports it
_PLAIN_TO_TLS = ("server disconnected without sending a response",)
# what a plain-http server answers a TLS handshake with (OpenSSL's wording)
_TLS_TO_PLAIN = ("wrong version number", "record layer failure", "packet length too long")
_UNTRUSTED = ("certificate_verify_failed", "certificate verify failed")
_EXPIRED = ("certificate has expired", "certificate is not yet valid")
_OTHER_NAME = ("hostname mismatch", "ip address mismatch", "certificate is not valid for")


def _host(url: str) -> str:
    try:
        host = urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        host = None
    return host or url


def _certificate_hint(url: str, said: str) -> str:
    host = _host(url)
    if any(s in said for s in _EXPIRED):
        return (
            f"the TLS certificate of {host} is outside its dates (expired, or this machine's "
            "clock is wrong): its operator renews it; no --registry-ca changes that"
        )
    if any(s in said for s in _OTHER_NAME):
        return (
            f"the TLS certificate of {host} is not made for that name: use a name it was "
            "made for in the URL, or have it made for this one"
        )
    return (
        f"the TLS certificate of {host} is not trusted here (its CA is unknown): give the "
        "CA file that signed it with --registry-ca FILE or LLM_MESH_REGISTRY_CA "
        "(MeshClient(ca_file=...)), or as registry_ca in the home's node.toml (--home, "
        "LLM_MESH_HOME), which every llm-mesh command reaching a registry reads"
    )


def reach_hint(url: str, error: str) -> str | None:
    """The fix to suggest when talking to ``url`` failed with ``error`` (its text), or ``None``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    said = error.lower()
    if any(s in said for s in _UNTRUSTED):
        return _certificate_hint(url, said)
    if scheme == "http" and any(s in said for s in _PLAIN_TO_TLS):
        return (
            "it closed a plain-http request unanswered: if it serves https "
            "(registry serve --tls-cert), its URL begins with https://"
        )
    if scheme == "https" and any(s in said for s in _TLS_TO_PLAIN):
        return "it did not answer TLS: if it serves plain http, its URL begins with http://"
    return None
