"""Whether a loopback request is the machine's own: pure decision, no I/O.

A node's operator endpoints (``/mesh/admin/*``, ``/mesh/info``, ``/mesh/earnings``), a
standalone node's inference and, on the registry and the node, ``/metrics`` answer
loopback clients without a credential: on the operator's machine, loopback is taken for
the operator. A browser on that machine is loopback too, and runs whatever page it has
open:

- **DNS rebinding**: a site whose name first resolves to its own server, then to
  ``127.0.0.1``, reads the answers of those endpoints as same-origin (hardware,
  counters, the operator's earnings, metrics). The browser connects to loopback, but
  its ``Host`` header is the name the page used: the site's;
- **CSRF**: any web site can make the browser ``POST http://127.0.0.1:8801/mesh/admin/pause``
  (a simple form post needs no CORS preflight; the answer is unreadable, the node is
  paused all the same), or a standalone node run a prompt. ``Host`` is loopback here;
  the browser marks the request with the page's ``Origin`` (on every cross-origin
  request and every ``POST``).

:func:`loopback_refusal` refuses such a request, for every client (a browser sending
fetch metadata or not: Safari before 16.4 sends neither ``Origin`` nor ``Sec-Fetch-*``
on a rebound ``GET``):

1. its ``Host`` must name this machine: a loopback address (``127.0.0.0/8``, ``[::1]``,
   IPv4-mapped loopback: an address needs no DNS, so nothing rebinds it) or
   ``localhost`` (the system's hosts file and the browsers resolve it, not DNS), with any
   port, or one of ``own_names``, names the operator configured
   (``LLM_MESH_LOCAL_NAMES``, e.g. the machine's host name that ``/etc/hosts`` maps to
   ``127.0.1.1``). Not ``*.localhost``: not every system and browser keeps those from
   DNS (RFC 6761 asks them to), and a resolver on the path could then rebind one; an
   operator who uses one lists it. A missing or malformed ``Host`` is refused. The CLI,
   curl, Prometheus and the tests address ``127.0.0.1`` or ``localhost``;
2. its ``Origin``, when sent, must be such a name's too (``http``/``https``): a page
   served from the operator's own machine (``http://localhost:3000``) is the machine's,
   as a local program is; a page of another site, ``null`` or ``file://`` is not.

A credential (the metrics token, the gateway's signature) is not subject to this: a
browser cannot send one for a page.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from LLM_Mesh.core.metrics_access import is_loopback

__all__ = [
    "another_sites_page", "is_loopback_host", "local_name", "loopback_refusal",
    "parse_local_names",
]  # fmt: skip

REBOUND = (  # a noun phrase: the callers say "... answers X, not <this>"
    "a request addressed to a name this server does not know as its own (DNS rebinding?): "
    "address it as 127.0.0.1 or localhost, or, for another name of this machine, list it "
    "in LLM_MESH_LOCAL_NAMES where this server runs and restart it"
)
FOREIGN_PAGE = "a request from a web page of another site"


def local_name(name: str) -> str:
    """A host name as compared here: lower case, without a trailing dot."""
    return name.strip().lower().rstrip(".")


def _loopback_name(host: str, own_names: Collection[str]) -> bool:
    name = local_name(host)
    if name == "localhost" or name in own_names:
        return True
    return is_loopback(name.strip("[]"))  # an address: the peer rule's


def is_loopback_host(host_header: str | None, own_names: Collection[str] = ()) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names this machine:
    loopback, or one of ``own_names`` (given as :func:`parse_local_names` returns them)."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        port_ok = rest == "" or (rest[:1] == ":" and rest[1:].isascii() and rest[1:].isdigit())
        return end > 0 and port_ok and _loopback_name(host[1:end], ())
    name, sep, port = host.rpartition(":")
    if sep:
        if not (port.isascii() and port.isdigit()) or ":" in name:
            return False  # not a port, or an IPv6 address without brackets
        host = name
    return bool(host) and _loopback_name(host, own_names)


def _loopback_origin(origin: str, own_names: Collection[str]) -> bool:
    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and hostname is not None
        and _loopback_name(hostname, own_names)
    )


def loopback_refusal(headers: Mapping[str, str], own_names: Collection[str] = ()) -> str | None:
    """Why this request from a loopback peer must be refused (a rebound name, another
    site's page), or ``None``: it is the machine's own.

    ``headers`` is the request's (case-insensitive, as Starlette's); ``own_names`` the
    operator's extra names (:func:`parse_local_names`). See the module docstring.
    """
    if not is_loopback_host(headers.get("host"), own_names):
        return REBOUND
    origin = headers.get("origin")
    if origin is not None and not _loopback_origin(origin, own_names):
        return FOREIGN_PAGE
    return None


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _authority(origin: str) -> str | None:
    """``host[:port]`` of an ``http``/``https`` origin, the default port left out; ``None``
    for ``null``, ``file://`` and anything else."""
    try:
        parts = urlsplit(origin.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return host if port is None or str(port) == _DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"


def _host_authority(host_header: str | None) -> str:
    host = local_name(host_header or "")
    for port in (":80", ":443"):  # the page's origin leaves its default port out
        if host.endswith(port):
            return host[: -len(port)]
    return host


def another_sites_page(headers: Mapping[str, str]) -> bool:
    """Whether a request to a public endpoint that takes no credential from a browser (the
    gateway's ``POST /v1``) comes from a web page of another site: any site can make its
    visitors' browsers send one as a simple request (a ``text/plain`` body of JSON: no
    CORS preflight), with no way to read the answer, only to spend what it costs.

    ``Sec-Fetch-Site`` decides where sent (every current browser): only ``same-origin`` (a
    page of this server, the dashboard's playground) and ``none`` (typed by the user) are
    this server's. Without it an ``Origin``, when sent (a browser sends one with every
    ``POST``), must name this server's ``Host``; ``null`` or ``file://`` is another site.
    Programs (the SDKs, curl, the CLI) send neither: never refused."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    authority = _authority(origin)
    return authority is None or local_name(authority) != _host_authority(headers.get("host"))


def parse_local_names(value: str) -> tuple[str, ...]:
    """``LLM_MESH_LOCAL_NAMES``: host names, ``,``-separated (no port, no scheme), each
    a DNS name of letters, digits, ``-`` and ``.``; ``ValueError`` otherwise."""
    out: list[str] = []
    for part in value.split(","):
        name = local_name(part)
        if not name:
            continue
        labels = name.split(".")
        ok = (
            name.isascii()
            and len(name) <= 253
            and all(
                0 < len(label) <= 63
                and label[0] != "-"
                and label[-1] != "-"
                and all(c.isalnum() or c == "-" for c in label)
                for label in labels
            )
        )
        if not ok:
            raise ValueError(
                f"LLM_MESH_LOCAL_NAMES: {part.strip()!r} is not a host name (names only, "
                "','-separated: no scheme, port or address)"
            )
        out.append(name)
    return tuple(out)
