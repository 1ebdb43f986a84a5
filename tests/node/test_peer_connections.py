"""One peer cannot take all of a node's connections (``slow_clients.py``, ``max_per_peer``).

Found 2026-12-03: the read timeout bounded how long a connection was held, not how many:
one client opening ~35 idle connections a second kept a thousand open, the node's file
descriptors under the usual soft limit of 1024, and the node accepted nothing more (its
gateway's requests timed out, its heartbeats could not connect).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node_manager import NodeManager
from LLM_Mesh.slow_clients import MIN_PEER_CONNECTIONS, node_peer_cap, peer_key


def _own_address() -> str | None:
    """A non-loopback IPv4 address of this machine (a peer the node does not exempt)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
            addr = str(s.getsockname()[0])
    except OSError:
        return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _closed_by_server(sock: socket.socket, wait_s: float = 3.0) -> bool:
    sock.settimeout(wait_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_the_cap_follows_the_nodes_capacity_and_ipv6_counts_by_64() -> None:
    assert node_peer_cap(1, 8) == MIN_PEER_CONNECTIONS
    assert node_peer_cap(64, 256) == 2 * 320 + 64
    assert peer_key("2001:db8::1") == peer_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert peer_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert peer_key("not an address") is None


async def test_one_peer_cannot_hold_all_of_a_nodes_connections(tmp_path: Path) -> None:
    addr = _own_address()
    if addr is None:
        pytest.skip("no non-loopback address to connect from")
    cfg = NodeConfig(engine="sim", models=["m"], host="0.0.0.0", port=_free_port(),
                     register=False, sim_ttft_s=0)  # fmt: skip
    mgr = NodeManager(cfg, Settings(home=tmp_path))
    cap = node_peer_cap(cfg.max_concurrency, cfg.max_queue)
    server = asyncio.create_task(mgr.serve())
    held: list[socket.socket] = []
    try:
        async with httpx.AsyncClient(base_url=mgr.url, timeout=10) as local:
            for _ in range(600):
                try:
                    if (await local.get("/mesh/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            for _ in range(cap):  # idle connections, as a slowloris holds them
                held.append(socket.create_connection((addr, cfg.port)))
            await asyncio.sleep(0.2)
            extra = socket.create_connection((addr, cfg.port))
            held.append(extra)
            assert await asyncio.to_thread(_closed_by_server, extra)  # reset at once
            # loopback (the operator, a local proxy) is not counted: still served
            assert (await local.get("/mesh/health")).status_code == 200
            held.pop().close()
            held.pop(0).close()  # one of the peer's connections ends: it may open one again
            await asyncio.sleep(0.2)
            async with httpx.AsyncClient(base_url=f"http://{addr}:{cfg.port}", timeout=5) as far:
                assert (await far.get("/mesh/health")).status_code == 200
    finally:
        for s in held:
            s.close()
        mgr.stop()
        await asyncio.wait_for(server, 30)
