"""Keep a node's registries' addresses exempt from its per-peer cap (``core/peer_exempt.py``).

The hosts of the node's ``registry_url`` list are resolved with the event loop's
``getaddrinfo`` (a thread: the loop is not blocked) at start, every ``every_s`` (DNS
changes), and soon after each registration the agent counts (a failover to another
replica, a re-registration after the registry lost the node). A name that does not resolve
this time keeps the addresses it had: a DNS hiccup does not put the gateway under the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

from LLM_Mesh.core.peer_exempt import PeerExemption, canonical_address, registry_hosts

log = logging.getLogger("LLM_Mesh.node")

Resolve = Callable[[str], Awaitable[Iterable[str]]]


async def loop_resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to, by the running loop's ``getaddrinfo``."""
    if canonical_address(host) is not None:
        return [host]
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class RegistryPeers:
    """Resolves ``urls``' hosts into ``exemption.registry_addrs``."""

    def __init__(
        self,
        exemption: PeerExemption,
        urls: Iterable[str],
        *,
        resolve: Resolve = loop_resolve,
        timeout_s: float = 10.0,
    ) -> None:
        self.exemption = exemption
        self.hosts = registry_hosts(urls)
        self._resolve = resolve
        self._timeout = timeout_s
        self._known: dict[str, frozenset[str]] = {}

    async def refresh(self) -> frozenset[str]:
        """Resolve every host once (concurrently); the exempt addresses after it."""
        results = await asyncio.gather(*(self._one(h) for h in self.hosts), return_exceptions=True)
        for host, got in zip(self.hosts, results, strict=True):
            if isinstance(got, BaseException):
                log.warning("registry host %s did not resolve (%s): kept as before", host, got)
                continue
            self._known[host] = got
        addrs = frozenset().union(*self._known.values()) if self._known else frozenset()
        if self.exemption.set_registry_addrs(addrs):
            log.info(  # what it is for (found 2026-12-05: "not counted per peer" read as noise)
                "the registry's addresses (%s) are exempt from the per-peer cap on connections "
                "(its gateway's replicas share them)",
                ", ".join(sorted(addrs)),
            )
        return self.exemption.registry_addrs

    async def _one(self, host: str) -> frozenset[str]:
        got = await asyncio.wait_for(self._resolve(host), self._timeout)
        return frozenset(a for a in (canonical_address(x) for x in got) if a is not None)

    async def run(
        self,
        registrations: Callable[[], int] = lambda: 0,
        *,
        every_s: float = 300.0,
        tick_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Forever: refresh now, then every ``every_s`` and when ``registrations()`` moved."""
        seen = registrations()
        last = clock()
        await self._safe_refresh()
        while True:
            await asyncio.sleep(tick_s)
            now_seen = registrations()
            if now_seen != seen or clock() - last >= every_s:
                seen, last = now_seen, clock()
                await self._safe_refresh()

    async def _safe_refresh(self) -> None:
        with contextlib.suppress(Exception):  # logged per host in refresh; never ends run
            await self.refresh()
