"""May a node learn its gateway's key from its first registration answer? Pure, no I/O.

A node without a pinned gateway key (node.toml ``registry_public_key``, or a
``$LLM_MESH_HOME/gateway.pin`` it learned before) pins the key of its first accepted
registration answer for good (trust on first use, ``node/gateway_guard.py``). That answer
is only as trustworthy as the way it came:

- over ``https`` it is authenticated by TLS (the registry's certificate);
- to a loopback registry (``127.0.0.0/8``, ``::1``, ``localhost``: what ``llm-mesh up``,
  ``demo``, ``LocalMesh`` and the end-to-end tests use) it never left the machine;
- over plain ``http`` to any other host it is anyone's on the network path: a man in
  the middle answers with his own key, and the node pins it forever.

So a node whose registry URLs include a plain-http URL to another host, with no pinned
key, does not start (:data:`FirstUse.REFUSED`, :func:`refusal`), unless its operator opts
in to trust on first use over plain http (``allow_http_first_use``: a trusted LAN), which
is logged as a WARNING (:data:`FirstUse.OPTED_IN`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from LLM_Mesh.core.metrics_access import is_loopback

__all__ = [
    "PRINT_KEY_COMMAND",
    "FirstUse",
    "FirstUseDecision",
    "decide_first_use",
    "exposed_urls",
    "loopback_host",
    "opted_in_warning",
    "refusal",
]

PRINT_KEY_COMMAND = "llm-mesh registry public-key"  # run on the registry's machine
_LOOPBACK_NAMES = ("localhost", "localhost.")


class FirstUse(str, Enum):
    PINNED = "pinned"  # a key is pinned: no answer's key is taken on first use
    SAFE = "safe"  # every registry URL is https or loopback
    OPTED_IN = "opted_in"  # plain http to another host, by the operator's choice (warned)
    REFUSED = "refused"  # plain http to another host, no pin, no opt-in: do not start


@dataclass(frozen=True)
class FirstUseDecision:
    verdict: FirstUse
    exposed: tuple[str, ...] = ()  # the plain-http registry URLs to other hosts


def loopback_host(host: str | None) -> bool:
    """Whether a URL's host is this machine's loopback: an address in ``127.0.0.0/8`` or
    ``::1`` (brackets, an IPv4-mapped or scoped one included), or the name ``localhost``."""
    if not host:
        return False
    host = host.strip("[]").lower()
    return host in _LOOPBACK_NAMES or is_loopback(host)


def exposed_urls(urls: Iterable[str]) -> tuple[str, ...]:
    """The URLs among ``urls`` whose answers anyone on the path can forge: any that is not
    ``https`` and not to a loopback host (an unparsable one counts as exposed)."""
    exposed = []
    for url in urls:
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
        except ValueError:
            exposed.append(url)
            continue
        if parts.scheme.lower() == "https" or loopback_host(host):
            continue
        exposed.append(url)
    return tuple(exposed)


def decide_first_use(urls: Iterable[str], *, pinned: bool, allowed: bool) -> FirstUseDecision:
    """The verdict for a registering node with registry ``urls``; ``pinned``: it has a
    gateway key already (configured or learned); ``allowed``: its operator opted in to
    trust on first use over plain http."""
    exposed = exposed_urls(urls)
    if pinned:
        return FirstUseDecision(FirstUse.PINNED, exposed)
    if not exposed:
        return FirstUseDecision(FirstUse.SAFE)
    return FirstUseDecision(FirstUse.OPTED_IN if allowed else FirstUse.REFUSED, exposed)


def _listed(urls: tuple[str, ...]) -> str:
    shown = ", ".join(u[:200] for u in urls[:4])
    return shown + (f" (and {len(urls) - 4} more)" if len(urls) > 4 else "")


def refusal(exposed: tuple[str, ...]) -> str:
    """The start-up error for :data:`FirstUse.REFUSED`: what is wrong and how to fix it."""
    return (
        f"registry URL {_listed(exposed)} is plain http to another machine and this node "
        "has no pinned gateway key: it would pin the key of the first registration answer "
        "for good, and anyone on the network path can answer with their own. Fix one of: "
        '(1) use https for the registry (registry_url = "https://..."; the registry serves '
        "it with registry serve --tls-cert/--tls-key); "
        f"(2) pin the registry's key: run `{PRINT_KEY_COMMAND}` on the registry's machine and "
        'put registry_public_key = "<its output>" in node.toml (or pass '
        "--registry-public-key to llm-mesh node start); "
        "(3) on a network you trust, accept the first answer's key anyway: "
        "allow_http_first_use = true in node.toml, --allow-http-first-use, or "
        "LLM_MESH_ALLOW_HTTP_FIRST_USE=1"
    )


def opted_in_warning(exposed: tuple[str, ...]) -> str:
    """The WARNING for :data:`FirstUse.OPTED_IN`."""
    return (
        f"allow_http_first_use: this node will pin the gateway key of the first registration "
        f"answer from {_listed(exposed)}, plain http to another machine: anyone on the network "
        f"path can answer with their own key. Pin registry_public_key (`{PRINT_KEY_COMMAND}` "
        "on the registry's machine prints it) or use https"
    )
