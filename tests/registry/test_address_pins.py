"""No SSRF at the edge: admission, pinning, and that the outbound clients connect only to
pinned addresses and never follow a redirect (real loopback servers; no DNS: resolvers are
injected)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from LLM_Mesh.core.schemas import Hardware, HostedModel, NodeRegistration
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.errors import Forbidden, InvalidRequest, NodeAddressRefused
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.node_client import (
    AiohttpNodeClient,
    NodeClient,
    NodeConnectError,
)
from LLM_Mesh.registry.node_client_httpx import HttpxNodeClient, pinned_httpx_transport
from LLM_Mesh.registry.node_table import NodeTable
from tests.registry.helpers import ManualClock


class FakeDNS:
    """A resolver whose answers a test changes; counts its lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: Name or service not known")
        return self.answers[host]


# --- admission ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8801", "loopback"),
        ("http://[::1]:8801", "loopback"),
        ("http://0.0.0.0:8801", "unspecified"),
        ("http://169.254.169.254", "link_local"),
        ("http://10.1.2.3:8801", "private"),
        ("http://172.16.5.4:8801", "private"),
        ("http://192.168.1.20:8801", "private"),
        ("http://[fc00::5]:8801", "private"),
        ("http://[::ffff:127.0.0.1]:8801", "loopback"),
        ("http://2130706433:8801", "loopback"),
        ("http://0x7f000001:8801", "loopback"),
        ("http://internal.example:8801", "private"),  # a name that resolves to 10.0.0.7
        ("http://mixed.example:8801", "loopback"),  # one answer of two is loopback
    ],
)
async def test_private_addresses_are_refused_by_default(url: str, reason: str) -> None:
    dns = FakeDNS({"internal.example": ["10.0.0.7"], "mixed.example": ["8.8.8.8", "127.0.0.1"]})
    pins = AddressPins(resolver=dns)
    with pytest.raises(NodeAddressRefused) as exc:
        await pins.admit(url)
    assert exc.value.status == 403
    assert exc.value.extra["reason"] == reason
    assert exc.value.param == "url"
    assert not pins.admitted(url + "/v1/chat/completions")


async def test_a_resolved_private_address_is_not_shown() -> None:
    pins = AddressPins(resolver=FakeDNS({"internal.example": ["10.0.0.7"]}))
    with pytest.raises(NodeAddressRefused) as exc:
        await pins.admit("http://internal.example:8801")
    assert "10.0.0.7" not in exc.value.message  # no oracle for the registry's own DNS
    assert "--allow-private-nodes" in exc.value.message


@pytest.mark.parametrize("origins", [(), ("http://192.168.1.20:8801",)])
async def test_a_loopback_refusal_names_the_flag_for_nodes_on_this_machine(
    origins: tuple[str, ...],
) -> None:
    """Found 2026-12-06 (newuser33): a node on the registry's machine refused by ``registry
    serve`` was told only ``run it with --allow-private-nodes``, the flag that opens the whole
    LAN and link-local too, not ``--allow-loopback-nodes``, which lets in exactly such nodes
    (README, "Node addresses")."""
    pins = AddressPins(resolver=FakeDNS({}), private_origins=origins)
    with pytest.raises(NodeAddressRefused) as exc:
        await pins.admit("http://127.0.0.1:8802")
    assert "for nodes on this machine run it with --allow-loopback-nodes" in exc.value.message
    with pytest.raises(NodeAddressRefused) as exc:
        await pins.admit("http://10.1.2.3:8801")  # a LAN node: that flag would not let it in
    assert "--allow-loopback-nodes" not in exc.value.message
    assert "--allow-private-nodes" in exc.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://node.example", "scheme"),
        ("http://admin:pw@node.example", "userinfo"),
        ("http://unknown.example:8801", "unresolvable"),
        ("http://0x08080808:8801", "ip_spelling"),  # global, but spelled ambiguously
    ],
)
async def test_bad_urls_are_400(url: str, reason: str) -> None:
    pins = AddressPins(resolver=FakeDNS({}))
    with pytest.raises(InvalidRequest) as exc:
        await pins.admit(url)
    assert exc.value.status == 400
    assert exc.value.extra["reason"] == reason


async def test_global_name_is_pinned_and_admitted() -> None:
    dns = FakeDNS({"node.example": ["8.8.8.8", "2606:4700::1"]})
    pins = AddressPins(resolver=dns)
    assert await pins.admit("http://Node.Example:8801") == ("8.8.8.8", "2606:4700::1")
    assert pins.addresses("node.example") == ("8.8.8.8", "2606:4700::1")
    assert pins.admitted("http://Node.Example:8801/v1/chat/completions")
    assert not pins.admitted("http://Node.Example:9999/v1/chat/completions")


async def test_allow_private_and_one_allowed_origin() -> None:
    dns = FakeDNS({"lan-node": ["192.168.1.9"]})
    lan = AddressPins(allow_private=True, resolver=dns)
    assert await lan.admit("http://lan-node:8801") == ("192.168.1.9",)
    assert await lan.admit("http://127.0.0.1:8801") == ("127.0.0.1",)
    with pytest.raises(InvalidRequest):  # still one canonical spelling, still no userinfo
        await lan.admit("http://127.1:8801")

    own = AddressPins(private_origins=["http://127.0.0.1:8801/"])
    assert await own.admit("http://127.0.0.1:8801") == ("127.0.0.1",)
    for other in ("http://127.0.0.1:8802", "http://169.254.169.254:8801", "http://[::1]:8801"):
        with pytest.raises(NodeAddressRefused):
            await own.admit(other)


async def test_pins_of_urls_no_node_has_any_more_are_forgotten() -> None:
    """An operator churning node URLs must not grow the pins for ever: ``retain`` keeps
    what the known nodes' URLs are under and forgets the rest (addresses, TLS pins)."""
    dns = FakeDNS({"old.example": ["8.8.8.8"], "new.example": ["8.8.4.4"]})
    pins = AddressPins(resolver=dns)
    for url in ("https://old.example:8801", "https://new.example:8801", "http://1.1.1.1:8801"):
        await pins.admit(url)
        pins.pin_certificate(url, "ab" * 32 if url.startswith("https") else None)
    await pins.admit("http://new.example:9000")  # the same host on another port

    assert pins.retain(["https://new.example:8801/", "http://new.example:9000"]) == 2
    assert not pins.admitted("https://old.example:8801/v1/completions")
    assert not pins.admitted("http://1.1.1.1:8801/v1/completions")
    assert pins.addresses("old.example") is None and pins.addresses("1.1.1.1") is None
    assert pins.fingerprint("https://old.example:8801/v1/completions") is None
    assert pins.host_fingerprint("old.example", 8801) is None
    assert not pins.registered("https://old.example:8801")
    # what is kept is whole
    assert pins.admitted("https://new.example:8801/v1/completions")
    assert pins.admitted("http://new.example:9000/v1/completions")
    assert pins.addresses("new.example") == ("8.8.4.4",)
    assert pins.fingerprint("https://new.example:8801/x") == "ab" * 32
    assert pins.host_fingerprint("new.example", 8801) == "ab" * 32
    assert pins.registered("https://new.example:8801")
    assert pins.retain(["https://new.example:8801", "http://new.example:9000"]) == 0
    # a forgotten URL is checked again before any connection to it
    await pins.ensure("https://old.example:8801/v1/completions")
    assert pins.addresses("old.example") == ("8.8.8.8",)
    assert dns.lookups.count("old.example") == 2


async def test_a_name_that_later_resolves_elsewhere_keeps_its_pin() -> None:
    dns = FakeDNS({"node.example": ["8.8.8.8"]})
    pins = AddressPins(resolver=dns)
    await pins.admit("http://node.example:8801")
    dns.answers["node.example"] = ["169.254.169.254"]  # DNS rebinding
    await pins.ensure("http://node.example:8801/v1/chat/completions")
    assert pins.addresses("node.example") == ("8.8.8.8",)
    assert dns.lookups == ["node.example"]
    with pytest.raises(NodeAddressRefused):  # registering again checks again
        await pins.admit("http://node.example:8801")
    assert pins.addresses("node.example") == ("8.8.8.8",)


async def test_a_url_checked_before_its_first_connection_meets_the_transport_rule() -> None:
    """Found 2026-12-04 (review): a node known from the store (a restart, another replica)
    was admitted on its first connection by its addresses alone, and the transport rule had
    judged its ``http://localhost`` by the spelling (``snapshot.entry_from_record``): where
    this machine's ``localhost`` resolves elsewhere, prompts went there in clear, which its
    registration refuses (403 ``plain_http_remote``). The resolved addresses decide now."""
    dns = FakeDNS({"localhost": ["93.184.216.34"], "n1.example": ["93.184.216.35"]})
    pins = AddressPins(resolver=dns, allow_loopback=True, transport=NodeTransport())
    with pytest.raises(Forbidden) as refused:
        await pins.ensure("http://localhost:8801/v1/chat/completions")
    assert refused.value.extra["reason"] == "plain_http_remote"
    assert "unencrypted" in refused.value.message
    assert not pins.admitted("http://localhost:8801/v1/chat/completions")
    assert pins.addresses("localhost") is None  # nothing pinned: nothing is connected to
    with pytest.raises(Forbidden):
        await pins.ensure("http://n1.example:8801/mesh/health")
    await pins.ensure("https://n1.example:8801/mesh/health")  # https: any host
    dns.answers["localhost"] = ["127.0.0.1", "::1"]  # where it is loopback: as registered
    await pins.ensure("http://localhost:8801/v1/chat/completions")
    assert pins.addresses("localhost") == ("127.0.0.1", "::1")
    # the registry's opt-outs, as a registration's
    lab = AddressPins(resolver=dns, transport=NodeTransport(allow_plain_http=True))
    await lab.ensure("http://n1.example:8801/mesh/health")
    tls = AddressPins(resolver=dns, allow_loopback=True, transport=NodeTransport(True))
    with pytest.raises(Forbidden) as refused:
        await tls.ensure("http://localhost:8801/mesh/health")
    assert refused.value.extra["reason"] == "tls_required"


# --- the clients ----------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await handler(r, w)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(wrapped, host, port)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


def answering(hits: list[str], status: str = "200 OK", extra: str = "") -> Handler:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: several requests on one connection
            head = await r.readuntil(b"\r\n\r\n")
            hits.append(head.decode())
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            if n:
                await r.readexactly(n)
            w.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 2\r\n\r\n{{}}".encode())
            await w.drain()

    return h


@asynccontextmanager
async def client_for(kind: str, pins: AddressPins | None) -> AsyncIterator[NodeClient]:
    if kind == "aiohttp":
        client: NodeClient = AiohttpNodeClient(pins=pins)
    elif pins is not None:
        client = HttpxNodeClient(
            httpx.AsyncClient(transport=pinned_httpx_transport(pins)), pins=pins
        )
    else:
        client = HttpxNodeClient(httpx.AsyncClient(follow_redirects=True))
    try:
        yield client
    finally:
        await client.aclose()


KINDS = pytest.mark.parametrize("kind", ["aiohttp", "httpx"])


@KINDS
async def test_client_connects_to_the_pinned_address_not_a_new_answer(kind: str) -> None:
    node_hits: list[str] = []
    other_hits: list[str] = []
    async with serve(answering(node_hits)) as port:  # noqa: SIM117 (the second needs port)
        async with serve(answering(other_hits), host="127.0.0.2", port=port):
            dns = FakeDNS({"node.test": ["127.0.0.1"]})
            pins = AddressPins(allow_private=True, resolver=dns)
            await pins.admit(f"http://node.test:{port}")
            dns.answers["node.test"] = ["127.0.0.2"]  # the name now points elsewhere
            async with client_for(kind, pins) as client:
                for _ in range(2):
                    resp = await client.post(
                        f"http://node.test:{port}/v1/completions",
                        b"{}",
                        {},
                        timeout_s=5,
                        connect_s=2,
                    )
                    assert resp.status_code == 200
                resp = await client.get(f"http://node.test:{port}/mesh/health", timeout_s=5)
                assert resp.status_code == 200
    assert len(node_hits) == 3 and other_hits == []
    assert all(f"host: node.test:{port}" in h.lower() for h in node_hits)  # Host header kept
    assert dns.lookups == ["node.test"]  # pinned at admission, never resolved again


@KINDS
async def test_client_refuses_an_address_the_pins_refuse(kind: str) -> None:
    hits: list[str] = []
    async with serve(answering(hits)) as port:
        dns = FakeDNS({"rebound.test": ["127.0.0.1"]})
        async with client_for(kind, AddressPins(resolver=dns)) as client:
            for url in (f"http://127.0.0.1:{port}/mesh/health", f"http://rebound.test:{port}/x"):
                with pytest.raises(NodeConnectError) as exc:
                    await client.get(url, timeout_s=5)
                assert exc.value.kind == "AddressRefused"
            with pytest.raises(NodeConnectError):
                await client.post(
                    f"http://127.0.0.1:{port}/v1/completions", b"{}", {}, timeout_s=5, connect_s=2
                )
    assert hits == []  # nothing was sent


@KINDS
@pytest.mark.parametrize("pinned", [True, False])
async def test_redirect_from_a_node_is_not_followed(kind: str, pinned: bool) -> None:
    target_hits: list[str] = []
    node_hits: list[str] = []
    async with serve(answering(target_hits)) as target:
        location = f"Location: http://127.0.0.1:{target}/latest/meta-data\r\n"
        async with serve(answering(node_hits, "302 Found", location)) as port:
            pins = AddressPins(allow_private=True) if pinned else None
            if pins is not None:
                await pins.admit(f"http://127.0.0.1:{port}")
            async with client_for(kind, pins) as client:
                url = f"http://127.0.0.1:{port}"
                resp = await client.post(
                    url + "/v1/completions", b"{}", {}, timeout_s=5, connect_s=2
                )
                assert resp.status_code == 302
                resp = await client.stream(
                    url + "/v1/completions", b"{}", {}, timeout_s=5, connect_s=2
                )
                assert resp.status_code == 302
                await resp.aclose()
                resp = await client.get(url + "/mesh/health", timeout_s=5)
                assert resp.status_code == 302
    assert len(node_hits) == 3
    assert target_hits == []


async def test_health_check_of_an_unpinned_private_node_connects_nowhere() -> None:
    """A node known only from the store (a restart): admitted on first use, or refused."""
    hits: list[str] = []
    async with serve(answering(hits)) as port:
        table = NodeTable(30.0, ManualClock())
        table.register(
            NodeRegistration(
                node_id="n1",
                url=f"http://127.0.0.1:{port}",
                models=[HostedModel(id="gemma-3-270m")],
                hardware=Hardware(),
            )
        )
        client = AiohttpNodeClient(pins=AddressPins())
        checker = HealthChecker(table, lambda: client, interval_s=300, sweep_interval_s=10)
        try:
            [result] = await checker.run_pass()
        finally:
            await client.aclose()
    assert result["ok"] is False
    assert "AddressRefused" in result["error"] and "loopback" in result["error"]
    assert hits == []


async def test_pinned_httpx_transport_alone_connects_to_admitted_hosts_only() -> None:
    """Even without the client's check, the transport has no address for an unadmitted host."""
    hits: list[str] = []
    async with serve(answering(hits)) as port:
        pins = AddressPins(allow_private=True)
        async with httpx.AsyncClient(transport=pinned_httpx_transport(pins)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")
            await pins.admit(f"http://127.0.0.1:{port}")
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
    assert len(hits) == 1
