"""``LLM_Mesh.address_connect``: the backend connects to the chosen literals only, in order,
the next after a failed connect; a refusal of ``choose`` connects nowhere; a connected
stream goes through the route's ``opened``; a Unix socket is the caller's refusal."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpcore
import httpx
import pytest

from LLM_Mesh.address_connect import ChosenAddressBackend, Route, transport_over
from tests.fake_network import FakeNetwork, FakeStream


class _Refused(Exception):
    pass


def _route(
    route: Route, asked: list[tuple[str, int]] | None = None
) -> Callable[[str, int], Awaitable[Route]]:
    async def choose(host: str, port: int) -> Route:
        if asked is not None:
            asked.append((host, port))
        return route

    return choose


async def test_the_chosen_literals_are_tried_in_order_never_the_name() -> None:
    net, asked = FakeNetwork(down={"192.0.2.1"}), list[tuple[str, int]]()
    backend = ChosenAddressBackend(
        _route(Route(["192.0.2.1", "192.0.2.2"]), asked),
        tcp_only=_Refused,
        inner=net,
    )
    stream = await backend.connect_tcp("node.example", 8443)
    assert isinstance(stream, FakeStream) and stream.addr == "192.0.2.2"
    assert net.tried == [("192.0.2.1", 8443), ("192.0.2.2", 8443)]
    assert asked == [("node.example", 8443)]


async def test_every_address_down_raises_the_last_connect_error() -> None:
    net = FakeNetwork(down={"192.0.2.1", "192.0.2.2"})
    backend = ChosenAddressBackend(
        _route(Route(["192.0.2.1", "192.0.2.2"])),
        tcp_only=_Refused,
        inner=net,
    )
    with pytest.raises(httpcore.ConnectError, match=re.escape("192.0.2.2 is down")):
        await backend.connect_tcp("node.example", 80)
    empty = ChosenAddressBackend(_route(Route([])), tcp_only=_Refused, inner=net)
    with pytest.raises(httpcore.ConnectError, match=re.escape("node.example: no address")):
        await empty.connect_tcp("node.example", 80)


async def test_a_refusal_of_choose_connects_nowhere() -> None:
    async def choose(host: str, port: int) -> Route:
        raise _Refused(host)

    net = FakeNetwork()
    backend = ChosenAddressBackend(choose, tcp_only=_Refused, inner=net)
    with pytest.raises(_Refused, match=re.escape("evil.example")):
        await backend.connect_tcp("evil.example", 80)
    assert net.tried == []


async def test_opened_sees_each_connected_stream_and_may_replace_it() -> None:
    seen: list[str] = []

    async def opened(addr: str, stream: httpcore.AsyncNetworkStream) -> FakeStream:
        seen.append(addr)
        return FakeStream("wrapped " + addr)

    backend = ChosenAddressBackend(
        _route(Route(["192.0.2.1", "192.0.2.2"], opened)),
        tcp_only=_Refused,
        inner=FakeNetwork(down={"192.0.2.1"}),
    )
    stream = await backend.connect_tcp("node.example", 80)
    assert isinstance(stream, FakeStream) and stream.addr == "wrapped 192.0.2.2"
    assert seen == ["192.0.2.2"]  # not the address that did not connect


async def test_a_unix_socket_is_the_callers_refusal() -> None:
    backend = ChosenAddressBackend(
        _route(Route(["192.0.2.1"])),
        tcp_only=lambda: _Refused("TCP only"),
        inner=FakeNetwork(),
    )
    with pytest.raises(_Refused, match=re.escape("TCP only")):
        await backend.connect_unix_socket("/run/docker.sock")


async def test_the_transport_connects_through_the_backend() -> None:
    async def choose(host: str, port: int) -> Route:
        raise _Refused(f"{host}:{port}")

    transport = transport_over(ChosenAddressBackend(choose, tcp_only=_Refused))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(_Refused, match=re.escape("node.example:8080")):
            await client.get("http://node.example:8080/healthz")
