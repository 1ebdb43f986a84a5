"""Node addresses: checked once, pinned, and the only ones the registry connects to (no SSRF).

:meth:`AddressPins.admit` runs at registration: it parses the node's URL
strictly (:func:`LLM_Mesh.core.netguard.parse_node_url`), resolves a host name
with the injected ``resolver`` (default: ``getaddrinfo`` in a thread; tests pass
a function), refuses the URL unless *every* address is global
(:func:`~LLM_Mesh.core.netguard.address_refusal`) -- or the registry allows
private nodes (``Settings.allow_private_nodes``), loopback ones
(``Settings.allow_loopback_nodes``, ``llm-mesh up --allow-local-nodes``: ``127.0.0.0/8``
and ``::1`` only, nothing else private) or this very origin
(``Settings.private_node_origins``, what ``llm-mesh up`` uses for its own node)
-- and pins the addresses under the host name. A refusal names what this registry
accepts and the flag that would change it: ``llm-mesh up``'s own flag when ``up``
started it (``Settings.local_mesh``; for ``llm-mesh demo``'s registry, which has no such
flag and stops after one request, ``up``'s), else ``registry serve``'s. The outbound client
(:mod:`LLM_Mesh.registry.node_client`) then connects only to pinned addresses:
its resolver answers from :meth:`addresses`, never from DNS, so a name that
resolves elsewhere later (DNS rebinding) changes nothing until the node
registers again and passes the check again.

Pins live in memory. A registry that restarts (or a replica that learns a node
from the shared store) has none for its stored nodes: the client admits such a
URL the same way on its first connection (:meth:`ensure`), re-resolving once and
pinning again; a URL refused then is never connected to (the node fails its
health check with the reason). That admission also applies the registry's transport
rule (``transport``, :class:`~LLM_Mesh.core.tls.NodeTransport`) by the addresses it
resolved, as a registration does: a stored ``http://localhost`` row is loaded by its
spelling (``snapshot.py``, no DNS there) and called only where ``localhost`` resolves to
loopback alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from LLM_Mesh.address_connect import Resolver, system_resolver
from LLM_Mesh.core.netguard import (
    LOOPBACK,
    IPAddress,
    NodeUrl,
    NodeUrlError,
    addresses_refusal,
    parse_address,
    parse_node_url,
)
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.errors import Forbidden, InvalidRequest, NodeAddressRefused

__all__ = ["AddressPins", "Resolver", "system_resolver"]


class AddressPins:
    """The registry's checked node addresses, pinned by host name; one per registry app."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        private_origins: Iterable[str] = (),
        allow_loopback: bool = False,
        local_mesh: str = "",
        resolver: Resolver = system_resolver,
        resolve_timeout_s: float = 5.0,
        transport: NodeTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback  # 127.0.0.0/8 and ::1, nothing else private
        self.local_mesh = local_mesh  # "up"/"demo" started this registry: say what to run
        self.transport = transport  # the registry's rule for http:// nodes (admit only)
        self.private_origins = frozenset(
            parse_node_url(o.rstrip("/")).origin for o in private_origins
        )
        self._resolver = resolver
        self._resolve_timeout_s = resolve_timeout_s
        self._hosts: dict[str, tuple[str, ...]] = {}  # host (name or literal) -> addresses
        self._prefixes: set[str] = set()  # "scheme://host[:port]" as written, admitted
        self._certs: dict[str, str] = {}  # prefix -> SHA-256 fingerprint of its TLS certificate
        self._cert_hosts: dict[tuple[str, int], str] = {}  # (host, port) -> fingerprint
        self._registered: set[str] = set()  # prefixes whose TLS pin came from a registration

    def addresses(self, host: str) -> tuple[str, ...] | None:
        """The pinned addresses of a host name (as an HTTP client hands it over), or ``None``."""
        return self._hosts.get(host.lower())

    def admitted(self, url: str) -> bool:
        """Whether ``url`` (a node URL or a request URL under it) passed :meth:`admit`. Cheap."""
        end = url.find("/", 8)  # after "https://" or "http://x"
        return (url if end < 0 else url[:end]) in self._prefixes

    def fingerprint(self, url: str) -> str | None:
        """The pinned certificate fingerprint of ``url``'s origin (a request URL), or ``None``."""
        if not self._certs:
            return None
        end = url.find("/", 8)
        return self._certs.get(url if end < 0 else url[:end])

    def host_fingerprint(self, host: str, port: int) -> str | None:
        """The pinned fingerprint for a connection to ``host:port`` (as a client hands it over)."""
        return self._cert_hosts.get((host.lower().strip("[]"), port))

    def registered(self, url: str) -> bool:
        """Whether this registry learnt ``url``'s TLS pin (or its absence) from a registration."""
        end = url.find("/", 8)
        return (url if end < 0 else url[:end]) in self._registered

    def pin_certificate(self, url: str, fingerprint: str | None) -> None:
        """Pin (or, ``None``, unpin) the certificate of an admitted node URL (its registration)."""
        node = parse_node_url(url)
        if fingerprint is None:
            self._certs.pop(node.prefix, None)
            self._cert_hosts.pop((node.host, node.port), None)
        else:
            self._certs[node.prefix] = fingerprint
            self._cert_hosts[(node.host, node.port)] = fingerprint
        self._registered.add(node.prefix)

    async def ensure(self, url: str) -> None:
        """:meth:`admit` ``url`` unless it already was (the client's check before connecting)."""
        if not self.admitted(url):
            end = url.find("/", 8)
            await self.admit(url if end < 0 else url[:end])

    async def admit(self, url: str) -> tuple[str, ...]:
        """Check a node URL and pin its addresses; raise if the registry may not call it
        (:meth:`check`, then the transport rule by the addresses resolved, then :meth:`pin`).
        A registration runs these steps itself, its transport refusals first (``api.py``)."""
        node, addrs = await self.check(url)
        reason = self.transport.refusal(url, None, addrs) if self.transport else None
        if reason == "plain_http":
            raise Forbidden(
                f"node url {node.prefix} is http:// and this registry requires TLS "
                "(--require-tls): not called; the node registers again to hear what to do",
                param="url",
                reason="tls_required",
            )
        if reason is not None:  # plain_http_remote: no fingerprint is given here
            raise Forbidden(
                f"node url {node.prefix} is http:// off this machine's loopback "
                "(plain_http_remote): prompts would cross the network unencrypted; not called "
                "(the node: serve https, llm-mesh node tls init; or the registry's "
                "--allow-private-node/--allow-plain-http-nodes)",
                param="url",
                reason=reason,
            )
        return self.pin((node, addrs))

    async def check(self, url: str) -> tuple[NodeUrl, tuple[str, ...]]:
        """Check a node URL and resolve it, pinning nothing: its parsed form and addresses
        for :meth:`pin`; raise if the registry may not call it (a registration checks this
        before it writes anything, then pins).

        ``InvalidRequest`` (400, ``param`` url) for a malformed URL, a scheme other
        than http(s), userinfo, an IP spelled other than as its canonical form, or a
        name that does not resolve; ``NodeAddressRefused`` (403, ``reason``) for a
        non-global address the registry does not allow.
        """
        try:
            node = parse_node_url(url)
        except NodeUrlError as exc:
            raise InvalidRequest(str(exc), param="url", reason=exc.reason) from None
        if node.ip is not None:
            addrs: list[IPAddress] = [node.ip]
        else:
            addrs = await self._resolve(node)
        refused = addresses_refusal(addrs, allow=(LOOPBACK,) if self.allow_loopback else ())
        if refused is not None and not (self.allow_private or node.origin in self.private_origins):
            addr, reason = refused
            shown = f"{addr}, " if node.ip is not None else "an address that is "
            raise NodeAddressRefused(
                f"node url {node.prefix} resolves to {shown}{reason.replace('_', '-')}: this "
                f"registry connects to {self._accepts(reason.split(' ')[0])}",
                param="url",
                reason=reason.split(" ")[0],
            )
        if node.ip is not None and str(node.ip) != node.host:
            raise InvalidRequest(
                f"url: write the address as {node.ip}, not {node.host!r}",
                param="url",
                reason="ip_spelling",
            )
        return node, tuple(str(a) for a in addrs)

    def _accepts(self, reason: str = "") -> str:
        """What this registry connects to, and which flag would let more in (a refusal's end):
        for a ``loopback`` refusal by a registry of its own, the flag for exactly that."""
        lan = "`llm-mesh registry serve --allow-private-nodes`"
        if self.local_mesh == "demo":  # no flag for more nodes: it stops after one request
            return (
                "global addresses only, and its own node's (`llm-mesh demo`'s registry, which "
                "stops after its one request); for a mesh that other nodes on this machine may "
                f"join, run `llm-mesh up --allow-local-nodes`; for a LAN run {lan}"
            )
        if self.local_mesh and self.allow_loopback:
            return (
                "global and loopback addresses only (`llm-mesh up --allow-local-nodes`: nodes "
                f"on this machine); a node on a LAN or other private address needs a registry "
                f"run as {lan}"
            )
        if self.local_mesh:
            return (
                "global addresses only, and its own node's (`llm-mesh up`'s registry); to let "
                "other nodes on this machine join, restart it as `llm-mesh up "
                f"--allow-local-nodes`; for a LAN run {lan}"
            )
        if self.allow_loopback:
            return (
                "global and loopback addresses only (--allow-loopback-nodes); for a LAN or "
                "other private addresses run it with --allow-private-nodes"
            )
        here = ""
        if reason == "loopback":
            here = "for nodes on this machine run it with --allow-loopback-nodes; "
        if self.private_origins:
            return (
                "global addresses only, and the private origins it was started with "
                f"(--allow-private-node); {here}for a LAN or local tests run {lan}"
            )
        return (
            f"global addresses only ({here}run it with --allow-private-nodes for a LAN or "
            "local tests)"
        )

    def pin(self, checked: tuple[NodeUrl, tuple[str, ...]]) -> tuple[str, ...]:
        """Pin what :meth:`check` answered; the addresses."""
        node, pinned = checked
        self._hosts[node.host] = pinned
        if node.ip is not None:  # a literal pins itself, however a client spells it back
            self._hosts[str(node.ip)] = pinned
        self._prefixes.add(node.prefix)
        return pinned

    def retain(self, urls: Iterable[str]) -> int:
        """Forget the pins of every admitted origin that none of ``urls`` (the node URLs the
        registry knows now) is under; return how many origins went. A node that moved to
        another URL, or is gone, leaves its old pins behind otherwise, so an operator churning
        URLs would grow them without end. Safe at any time: a URL forgotten here is checked
        and pinned again before any connection to it (:meth:`ensure`); only its TLS pin must
        come again with a registration (as after a restart)."""
        keep: set[str] = set()
        for url in urls:
            end = url.find("/", 8)
            keep.add(url if end < 0 else url[:end])
        gone = self._prefixes - keep
        if not gone:
            return 0
        self._prefixes -= gone
        self._registered -= gone
        for prefix in gone:
            self._certs.pop(prefix, None)
        hosts: set[str] = set()
        cert_hosts: set[tuple[str, int]] = set()
        for prefix in self._prefixes:
            node = parse_node_url(prefix)
            hosts.add(node.host)
            if node.ip is not None:
                hosts.add(str(node.ip))
            if prefix in self._certs:
                cert_hosts.add((node.host, node.port))
        for host in self._hosts.keys() - hosts:
            del self._hosts[host]
        for key in self._cert_hosts.keys() - cert_hosts:
            del self._cert_hosts[key]
        return len(gone)

    async def _resolve(self, node: NodeUrl) -> list[IPAddress]:
        try:
            answers = await asyncio.wait_for(
                self._resolver(node.host, node.port), self._resolve_timeout_s
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise InvalidRequest(
                f"url: the host {node.host!r} does not resolve ({type(exc).__name__})",
                param="url",
                reason="unresolvable",
            ) from None
        addrs: list[IPAddress] = []
        for text in answers:
            try:
                addrs.append(parse_address(text))
            except ValueError:
                raise InvalidRequest(
                    f"url: the host {node.host!r} resolves to something that is not an address",
                    param="url",
                    reason="unresolvable",
                ) from None
        if not addrs:
            raise InvalidRequest(
                f"url: the host {node.host!r} resolves to no address",
                param="url",
                reason="unresolvable",
            )
        return addrs
