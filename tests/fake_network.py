"""A network stack without sockets for the tests of httpcore network backends
(``LLM_Mesh/address_connect.py``, ``LLM_Mesh/node/download_guard.py``): it records every
connect and hands back a stream that reads nothing and writes nowhere."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore


class FakeStream(httpcore.AsyncNetworkStream):
    """A connected stream: ``addr`` the address it reached (or the name a wrapper gives
    it); its ``server_addr`` is ``(peer, 443)``, ``peer`` being ``addr`` unless said."""

    def __init__(self, addr: str, peer: str | None = None, network: FakeNetwork | None = None):
        self.addr, self.peer, self.network = addr, peer or addr, network

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        pass

    async def aclose(self) -> None:
        if self.network is not None:
            self.network.closed += 1

    def get_extra_info(self, info: str) -> Any:
        return (self.peer, 443) if info == "server_addr" else None


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """Connects to any address but those in ``down`` (a ``ConnectError``). ``tried``: each
    connect's ``(host, port)``, in order; ``closed``: how many of its streams were closed;
    ``peer``: the address every stream says it reached (default: the one asked for; another
    is a network stack that connected elsewhere)."""

    def __init__(self, down: Iterable[str] = (), peer: str | None = None) -> None:
        self.down, self.peer = set(down), peer
        self.tried: list[tuple[str, int]] = []
        self.closed = 0

    @property
    def hosts(self) -> list[str]:
        """The hosts of ``tried``."""
        return [host for host, _ in self.tried]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.tried.append((host, port))
        if host in self.down:
            raise httpcore.ConnectError(f"{host} is down")
        return FakeStream(host, self.peer, self)
