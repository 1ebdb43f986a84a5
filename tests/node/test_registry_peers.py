"""The registries' addresses, resolved while the node serves (``node/registry_peers.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import pytest

from LLM_Mesh.core.peer_exempt import PeerExemption
from LLM_Mesh.node.registry_peers import RegistryPeers, loop_resolve


async def test_refresh_follows_dns_and_a_failed_lookup_keeps_the_last_answer() -> None:
    answers: dict[str, object] = {"gw.example": ["198.51.100.7", "::ffff:198.51.100.8"]}

    async def resolve(host: str) -> Iterable[str]:
        got = answers[host]
        if isinstance(got, Exception):
            raise got
        assert isinstance(got, list)
        return got

    rule = PeerExemption()
    peers = RegistryPeers(rule, ["https://gw.example", "http://[2001:db8::10]:8800"],
                          resolve=resolve)  # fmt: skip
    answers["2001:db8::10"] = ["2001:db8::10"]
    assert await peers.refresh() == {"198.51.100.7", "198.51.100.8", "2001:db8::10"}
    answers["gw.example"] = ["198.51.100.9"]  # DNS moved
    await peers.refresh()
    assert rule("198.51.100.9") and not rule("198.51.100.7")
    answers["gw.example"] = OSError("temporary failure in name resolution")
    await peers.refresh()
    assert rule("198.51.100.9")  # kept: a DNS hiccup does not put the gateway under the cap


async def test_run_resolves_again_after_a_registration() -> None:
    calls: list[str] = []

    async def resolve(host: str) -> Iterable[str]:
        calls.append(host)
        return ["198.51.100.7"]

    registrations = [0]
    peers = RegistryPeers(PeerExemption(), ["https://gw.example"], resolve=resolve)
    task = asyncio.create_task(peers.run(lambda: registrations[0], every_s=3600, tick_s=0.01))
    try:
        await asyncio.sleep(0.1)
        assert calls == ["gw.example"]  # at start, not again before an hour
        registrations[0] += 1
        await asyncio.sleep(0.1)
        assert calls == ["gw.example", "gw.example"]
    finally:
        task.cancel()


async def test_the_loop_resolves_names_and_passes_literals() -> None:
    assert await loop_resolve("192.0.2.1") == ["192.0.2.1"]
    assert "127.0.0.1" in await loop_resolve("localhost") or "::1" in await loop_resolve(
        "localhost"
    )


async def test_the_start_line_says_what_the_exemption_is_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-05 (newuser31): a new node's log began "registry addresses not counted
    per peer: 127.0.0.1", which no operator could read: counted against what? It names the
    cap (connections per peer) and that the registry's addresses are exempt from it."""

    async def resolve(host: str) -> Iterable[str]:
        return ["127.0.0.1"]

    caplog.set_level(logging.INFO, logger="LLM_Mesh.node")
    await RegistryPeers(PeerExemption(), ["http://127.0.0.1:8800"], resolve=resolve).refresh()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "the registry's addresses (127.0.0.1) are exempt from the per-peer cap" in said, said
