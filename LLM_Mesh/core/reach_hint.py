"""What to tell an operator whose registry URL reaches a server it cannot talk to: pure, no I/O.

Two mistakes seen deploying replicas with TLS (``docs/deploy.md``) gave errors that did not
say what was wrong (found 2026-12-03):

- an ``http://`` URL for a replica that serves https (``registry serve --tls-cert``): the
  server drops the plain request, and the error read ``Server disconnected without sending
  a response.`` (the CLI, ``MeshClient``, a node's ``registry unreachable at ...``);
- an ``https://`` URL whose certificate is from a private CA not given to this program:
  ``CERTIFICATE_VERIFY_FAILED``, followed by ``Start one with `llm-mesh up` `` (a registry
  was running; its CA was missing).

:func:`reach_hint` names the likely fix for such an error, or ``None`` when it has none.
"""

from __future__ import annotations

__all__ = ["reach_hint"]

# what an https server answers a plain-http request with, as httpx reports it
_PLAIN_TO_TLS = ("server disconnected without sending a response",)
# what a plain-http server answers a TLS handshake with (OpenSSL's wording)
_TLS_TO_PLAIN = ("wrong version number", "record layer failure", "packet length too long")
_UNTRUSTED = ("certificate_verify_failed", "certificate verify failed")


def reach_hint(url: str, error: str) -> str | None:
    """The fix to suggest when talking to ``url`` failed with ``error`` (its text), or ``None``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    said = error.lower()
    if any(s in said for s in _UNTRUSTED):
        return (
            "the server's TLS certificate is not trusted here: give the CA that signed it "
            "with --registry-ca FILE or LLM_MESH_REGISTRY_CA (MeshClient(ca_file=...))"
        )
    if scheme == "http" and any(s in said for s in _PLAIN_TO_TLS):
        return (
            "it closed a plain-http request unanswered: if it serves https "
            "(registry serve --tls-cert), its URL begins with https://"
        )
    if scheme == "https" and any(s in said for s in _TLS_TO_PLAIN):
        return "it did not answer TLS: if it serves plain http, its URL begins with http://"
    return None
