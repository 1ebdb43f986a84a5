"""Whether a loopback request was made by a web page: pure decision, no I/O.

A node's operator endpoints (``/mesh/admin/*``, ``/mesh/info``, ``/mesh/earnings``), a
standalone node's inference and ``/metrics`` answer loopback clients without a
credential: on the operator's machine, loopback is taken for the operator. A browser on
that machine is loopback too, and runs whatever page it has open:

- **CSRF**: any web site can make the browser ``POST http://127.0.0.1:8801/mesh/admin/pause``
  (a simple form post needs no CORS preflight; the answer is unreadable, the node is
  paused all the same), or a standalone node run a prompt;
- **DNS rebinding**: a site whose name first resolves to its own server, then to
  ``127.0.0.1``, reads the answers of those endpoints as same-origin (hardware,
  counters, the operator's earnings, metrics).

Browsers mark what they send: ``Origin`` on every cross-origin request and every
``POST``, and fetch metadata (``Sec-Fetch-Site``) on every request (Chrome 76+,
Firefox 90+, Safari 16.4+), with ``Host`` the name the page used. The CLI, curl,
Prometheus and the tests send neither ``Origin`` nor ``Sec-Fetch-*``, and are left
alone. For a request that carries either, :func:`web_page_refusal` refuses it unless its
``Origin`` (when sent) is a loopback origin and its ``Host`` a loopback name
(``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``[::1]``), so a page from another
site, or one reached through a rebound name, gets nothing. A page served from the
operator's own machine (``http://localhost:3000``) is the machine's, as a local
program is. Not covered: a browser that sends neither header (Safari before 16.4) on a
rebound ``GET``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from LLM_Mesh.core.metrics_access import is_loopback

__all__ = ["is_loopback_host", "web_page_refusal"]


def _loopback_name(host: str) -> bool:
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return is_loopback(name.strip("[]"))  # an address: the peer rule's


def is_loopback_host(host_header: str | None) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names loopback."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        return end > 0 and _loopback_name(host[1:end])
    name, sep, port = host.rpartition(":")
    if sep and port.isascii() and port.isdigit():
        host = name
    return _loopback_name(host)


def _loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and hostname is not None and _loopback_name(hostname)


def web_page_refusal(headers: Mapping[str, str]) -> str | None:
    """Why this loopback request is a web page's that must be refused, or ``None``.

    ``headers`` is the request's (case-insensitive, as Starlette's); see the module
    docstring for the rule.
    """
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if origin is None and site is None:
        return None  # not a browser: the CLI, curl, a scraper
    if origin is not None and not _loopback_origin(origin):
        return "a request from a web page of another site"
    if not is_loopback_host(headers.get("host")):
        return "a browser request to a name that is not loopback (DNS rebinding?)"
    return None
