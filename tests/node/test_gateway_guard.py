"""Who may ask a node for inference: the attacks on a registered node's ``/v1``, and the
loopback rules (``node/gateway_guard.py``, through the real node app over ASGI).

Every attack runs twice (the ``registry`` fixture): against a registry that signs each
request (Ed25519) and one that agreed a session key at registration and sends an HMAC
(``core/gateway_session.py``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gateway_auth import (
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    HDR_GATEWAY_TIME,
    GatewaySigner,
)
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, asgi_client, node_config, sim_engine, wait_until

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5}
CHAT_PATH = "/v1/chat/completions"
REMOTE = ("203.0.113.7", 5555)  # the gateway, or anyone, on another machine


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


class Registry:
    """A registry behind a MockTransport that accepts the node and hands it ``key``; with
    ``session`` it also agrees a session key (as the real registry does)."""

    def __init__(self, key: Ed25519PrivateKey, *, session: bool = False) -> None:
        self.signer = GatewaySigner(key, time.time)
        self.session = session

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/mesh/nodes":
            reg = json.loads(request.content)
            answer = {
                "node_id": reg["node_id"],
                "heartbeat_interval_s": 3600,
                "registry_id": self.signer.registry_id,
                "registry_public_key": self.signer.public_key,
            }
            kx = self.signer.kx_answer(reg["node_id"], reg.get("gateway_kx_key"))
            if self.session and kx is not None:
                answer["gateway_kx_key"], answer["gateway_kx_signature"] = kx
            else:
                self.signer.forget(reg["node_id"])
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"ok": True})

    def headers(
        self, node_id: str, body: bytes, path: str = CHAT_PATH, rid: str = "req-1"
    ) -> dict[str, str]:
        h = self.signer.headers(node_id, rid, path, hashlib.sha256(body).hexdigest())
        h["Content-Type"] = "application/json"
        return h


@pytest.fixture(params=["signature", "session"])
def registry(request: pytest.FixtureRequest) -> Registry:
    return Registry(Ed25519PrivateKey.generate(), session=request.param == "session")


def _auth_header(headers: dict[str, str]) -> str:
    return HDR_GATEWAY_MAC if HDR_GATEWAY_MAC in headers else HDR_GATEWAY_SIGNATURE


@pytest.fixture
async def registered(settings: Settings, registry: Registry) -> AsyncIterator[NodeService]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    svc = NodeService(
        node_config(register=True),
        settings,
        engine=sim_engine(),
        http_client=http,
        hardware=Hardware(cpu_count=2, memory_bytes=1 << 30),
    )
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    assert svc.gateway.has_session == registry.session
    yield svc
    await svc.stop()
    await http.aclose()


async def _post(svc: NodeService, body: bytes, headers: dict[str, str], path: str = CHAT_PATH,
                client: tuple[str, int] = REMOTE) -> httpx.Response:  # fmt: skip
    async with asgi_client(svc, client=client) as c:
        return await c.post(path, content=body, headers=headers)


def _code(r: httpx.Response) -> str:
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}  # OpenAI's error shape
    assert err["type"] == "authentication_error"
    return str(err["code"])


async def test_the_gateways_signed_request_is_served(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    r = await _post(registered, body, registry.headers(registered.node_id, body))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    stream = _raw({**CHAT, "stream": True})
    r = await _post(registered, stream, registry.headers(registered.node_id, stream, rid="req-2"))
    assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
    assert registered.gateway.registry_id == registry.signer.registry_id


@pytest.mark.parametrize("client", [REMOTE, ("127.0.0.1", 4321)], ids=["remote", "loopback"])
async def test_direct_call_without_the_gateway_is_401(
    registered: NodeService, client: tuple[str, int]
) -> None:
    for path, body in ((CHAT_PATH, CHAT), ("/v1/completions", {"model": MODEL, "prompt": "x"})):
        r = await _post(registered, _raw(body), {"Content-Type": "application/json"}, path, client)
        assert r.status_code == 401 and _code(r) == "invalid_signature"
    assert registered.requests_served == 0


async def test_bad_signature_is_401(registered: NodeService, registry: Registry) -> None:
    body = _raw(CHAT)
    headers = registry.headers(registered.node_id, body)
    name = _auth_header(headers)
    assert (name == HDR_GATEWAY_MAC) == registry.session
    headers[name] = "A" * (43 if registry.session else 86)  # zero-ish bytes
    assert _code(await _post(registered, body, headers)) == "invalid_signature"
    headers[name] = "not base64!"
    r = await _post(registered, body, headers)
    assert r.status_code == 401 and _code(r) == "invalid_signature"


async def test_replayed_gateway_request_is_refused(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    headers = registry.headers(registered.node_id, body)
    assert (await _post(registered, body, headers)).status_code == 200
    r = await _post(registered, body, headers)
    assert r.status_code == 401 and _code(r) == "replayed_message"
    assert registered.requests_served == 1


async def test_signature_of_another_registry_key_is_401(registered: NodeService) -> None:
    other = Registry(Ed25519PrivateKey.generate())
    body = _raw(CHAT)
    headers = other.headers(registered.node_id, body)
    assert _code(await _post(registered, body, headers)) == "invalid_signature"
    # the other key's signature under the pinned registry's id: still refused
    headers["X-Mesh-Gateway"] = registered.gateway.registry_id or ""
    r = await _post(registered, body, headers)
    assert r.status_code == 401 and _code(r) == "invalid_signature"


async def test_body_altered_after_signing_is_401(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    headers = registry.headers(registered.node_id, body)
    altered = _raw({**CHAT, "max_tokens": 500})
    r = await _post(registered, altered, headers)
    assert r.status_code == 401 and _code(r) == "invalid_signature"


async def test_request_for_another_node_or_endpoint_is_401(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    r = await _post(registered, body, registry.headers("node-someoneelse", body))
    assert r.status_code == 401 and _code(r) == "invalid_signature"
    signed_for_completions = registry.headers(registered.node_id, body, path="/v1/completions")
    r = await _post(registered, body, signed_for_completions)
    assert r.status_code == 401 and _code(r) == "invalid_signature"


async def test_stale_gateway_timestamp_is_401(registered: NodeService, registry: Registry) -> None:
    body = _raw(CHAT)
    real = registry.signer.wall_clock
    registry.signer.wall_clock = lambda: real() - 121
    headers = registry.headers(registered.node_id, body)
    r = await _post(registered, body, headers)
    assert r.status_code == 401 and _code(r) == "stale_message"
    assert int(headers[HDR_GATEWAY_TIME]) < time.time() * 1000 - 120_000


async def test_loopback_operator_tools_still_work(registered: NodeService) -> None:
    async with asgi_client(registered) as c:  # loopback, no gateway signature
        for action, state in (("pause", "paused"), ("resume", "online"), ("drain", "draining")):
            r = await c.post(f"/mesh/admin/{action}")
            assert r.status_code == 200 and r.json()["state"] == state
        assert (await c.get("/mesh/info")).json()["node_id"] == registered.node_id
        assert (await c.get("/mesh/health")).status_code == 200
        assert (await c.get("/v1/models")).status_code == 200


async def test_operator_endpoints_refuse_remote_clients(registered: NodeService) -> None:
    async with asgi_client(registered, client=REMOTE) as c:
        assert (await c.post("/mesh/admin/pause")).status_code == 403
        r = await c.get("/mesh/info")  # hardware and counters are the operator's
        assert r.status_code == 403 and "hardware" not in r.text
        # the registry's active health check needs no signature
        assert (await c.get("/mesh/health")).status_code == 200


EVIL_PAGE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
REBOUND = {"Host": "rebind.evil.example:8801", "Sec-Fetch-Site": "same-origin"}
# a browser that sends neither Origin nor fetch metadata (Safari before 16.4) on a rebound GET
REBOUND_BARE = {"Host": "rebind.evil.example:8801"}
BROWSERS = pytest.mark.parametrize(
    "browser", [EVIL_PAGE, REBOUND, REBOUND_BARE], ids=["csrf", "dns_rebinding", "rebinding_bare"]
)


@BROWSERS
async def test_operator_endpoints_refuse_a_web_page_on_the_operators_machine(
    registered: NodeService, browser: dict[str, str]
) -> None:
    """A site open in the operator's browser makes it post to the node's loopback port
    (CSRF: a form post needs no preflight), or reads it through a name rebound to
    127.0.0.1: loopback, but not the operator (found 2026-12-02: the node was paused or
    drained by any web page, and /mesh/info and /mesh/earnings read by a rebound one)."""
    async with asgi_client(registered) as c:  # loopback
        for action in ("pause", "drain"):
            r = await c.post(f"/mesh/admin/{action}", headers=browser)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert registered.health()["state"] == "online"
        for path in ("/mesh/info", "/mesh/earnings"):
            r = await c.get(path, headers=browser)
            assert r.status_code == 403 and "hardware" not in r.text
        # the operator's own browser tab on the loopback address still works
        own = {"Host": "127.0.0.1:8801", "Sec-Fetch-Site": "none"}
        assert (await c.get("/mesh/info", headers=own)).status_code == 200
        assert (await c.get("/mesh/health", headers=browser)).status_code == 200


@BROWSERS
async def test_standalone_node_refuses_a_web_page_on_its_machine(
    settings: Settings, browser: dict[str, str]
) -> None:
    """A standalone node serves programs on its machine unauthenticated, not any web site
    the operator's browser has open (a text/plain post of a JSON body runs a prompt)."""
    svc = NodeService(node_config(register=False), settings, engine=sim_engine(),
                      hardware=Hardware())  # fmt: skip
    await svc.start()
    try:
        page = {"Content-Type": "text/plain", **browser}
        r = await _post(svc, _raw(CHAT), page, client=("127.0.0.1", 1))
        assert r.status_code == 401 and "not a " in r.json()["error"]["message"]
        local = {"Content-Type": "application/json", "Origin": "http://localhost:3000",
                 "Host": "127.0.0.1:8801"}  # fmt: skip
        assert (await _post(svc, _raw(CHAT), local, client=("127.0.0.1", 1))).status_code == 200
    finally:
        await svc.stop()


async def test_a_rebound_name_without_fetch_metadata_reads_nothing(
    registered: NodeService, settings: Settings
) -> None:
    """DNS rebinding from a browser that sends neither ``Origin`` nor ``Sec-Fetch-Site``:
    the page's name now resolves to 127.0.0.1 and it reads the node's loopback-only GETs
    as same-origin. Refused by ``Host`` alone, 403 in the error shape (found 2026-12-02:
    /mesh/info, /mesh/earnings and /metrics answered it); loopback names still answer, and
    an operator's configured own name (``LLM_MESH_LOCAL_NAMES``) too."""
    async with asgi_client(registered) as c:  # loopback peer
        for path in ("/mesh/info", "/mesh/earnings", "/metrics"):
            r = await c.get(path, headers=REBOUND_BARE)
            assert r.status_code == 403, (path, r.text)
            err = r.json()["error"]
            assert err["code"] == "forbidden" and err["type"] == "permission_error"
            assert "rebinding" in err["message"] and "node_id" not in r.text
        for host in ("127.0.0.1:8801", "localhost:8801", "[::1]:8801", "127.0.0.1"):
            r = await c.get("/mesh/info", headers={"Host": host})
            assert r.status_code == 200 and r.json()["node_id"] == registered.node_id
            assert (await c.get("/metrics", headers={"Host": host})).status_code == 200
        assert (await c.get("/mesh/info", headers={"Host": "mybox:8801"})).status_code == 403
    own = NodeService(node_config(register=False), replace(settings, local_names=("mybox",)),
                      engine=sim_engine(), hardware=Hardware())  # fmt: skip
    await own.start()
    try:
        async with asgi_client(own) as c:
            assert (await c.get("/mesh/info", headers={"Host": "mybox:8801"})).status_code == 200
            assert (await c.get("/metrics", headers={"Host": "MyBox"})).status_code == 200
            assert (await c.get("/mesh/info", headers=REBOUND_BARE)).status_code == 403
        r = await _post(own, _raw(CHAT), {"Content-Type": "application/json", "Host": "mybox"},
                        client=("127.0.0.1", 1))  # fmt: skip
        assert r.status_code == 200
    finally:
        await own.stop()


async def test_public_endpoints_answer_any_host(
    registered: NodeService, registry: Registry
) -> None:
    """The Host check is the loopback-only endpoints': the gateway's signed requests,
    addressed to the node's public name, and the public GETs answer whatever the name."""
    public = {"Host": "node7.example.net:8801"}
    body = _raw(CHAT)
    r = await _post(registered, body, {**registry.headers(registered.node_id, body), **public})
    assert r.status_code == 200, r.text
    for client in (REMOTE, ("127.0.0.1", 1)):
        async with asgi_client(registered, client=client) as c:
            assert (await c.get("/mesh/health", headers=public)).status_code == 200
            assert (await c.get("/v1/models", headers=REBOUND_BARE)).status_code == 200


async def test_no_key_before_registration_is_401(settings: Settings) -> None:
    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=down, hardware=Hardware())  # fmt: skip
    await svc.start()
    try:
        r = await _post(svc, _raw(CHAT), {"Content-Type": "application/json"},
                        client=("127.0.0.1", 1))  # fmt: skip
        assert r.status_code == 401 and "no gateway key" in r.json()["error"]["message"]
    finally:
        await svc.stop()
        await down.aclose()


async def test_standalone_node_serves_loopback_only(settings: Settings) -> None:
    svc = NodeService(node_config(register=False), settings, engine=sim_engine(),
                      hardware=Hardware())  # fmt: skip
    await svc.start()
    try:
        body = _raw(CHAT)
        plain = {"Content-Type": "application/json"}
        assert (await _post(svc, body, plain, client=("127.0.0.1", 1))).status_code == 200
        assert (await _post(svc, body, plain, client=("::1", 1))).status_code == 200
        r = await _post(svc, body, plain, client=REMOTE)
        assert r.status_code == 401 and "loopback clients only" in r.json()["error"]["message"]
    finally:
        await svc.stop()


# the peers on which the node's own string rule (``"127." prefix, or 127.0.0.1, ::1,
# localhost``) and the project's (``core/metrics_access.is_loopback``) disagreed, and two
# on which they agreed: whether each is loopback now
PEERS = {
    "ipv4_mapped": ("::ffff:127.0.0.1", True),  # before: refused (a dual-stack listener's)
    "ipv6_long_form": ("0:0:0:0:0:0:0:1", True),  # before: refused
    "localhost_name": ("localhost", False),  # before: served (a peer is never a name)
    "127_name": ("127.example.org", False),  # before: served (the "127." prefix)
    "127.0.0.2": ("127.0.0.2", True),  # agreed: 127.0.0.0/8
    "0.0.0.0": ("0.0.0.0", False),  # agreed: not loopback
}


@pytest.mark.parametrize("peer", list(PEERS))
async def test_loopback_is_the_projects_one_rule(settings: Settings, peer: str) -> None:
    """A standalone node's inference and its operator endpoints read a peer's loopback by
    ``core/metrics_access.is_loopback``, as ``/metrics`` does: one rule, not a string
    match of its own."""
    host, loopback = PEERS[peer]
    svc = NodeService(node_config(register=False), settings, engine=sim_engine(),
                      hardware=Hardware())  # fmt: skip
    await svc.start()
    try:
        plain = {"Content-Type": "application/json"}
        r = await _post(svc, _raw(CHAT), plain, client=(host, 1))
        assert r.status_code == (200 if loopback else 401), r.text
        async with asgi_client(svc, client=(host, 1)) as c:
            assert (await c.get("/mesh/info")).status_code == (200 if loopback else 403)
    finally:
        await svc.stop()


async def test_reregistration_with_the_same_key_keeps_the_replay_cache(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    headers = registry.headers(registered.node_id, body)
    assert (await _post(registered, body, headers)).status_code == 200
    registered.gateway.pin({"registry_public_key": registry.signer.public_key})
    assert (await _post(registered, body, headers)).status_code == 401
    other = Registry(Ed25519PrivateKey.generate())
    registered.gateway.pin({"registry_public_key": other.signer.public_key})  # refused
    fresh = registry.headers(registered.node_id, body, rid="req-9")
    assert (await _post(registered, body, fresh)).status_code == 200  # the pin stays
    assert registered.gateway.pin_file is not None
    registered.gateway.pin_file.unlink()  # llm-mesh node keys forget-gateway: rotated
    registered.gateway.pin({"registry_public_key": other.signer.public_key})
    fresh = registry.headers(registered.node_id, body, rid="req-10")
    assert (await _post(registered, body, fresh)).status_code == 401  # the old key is out
    assert (
        await _post(registered, body, other.headers(registered.node_id, body))
    ).status_code == 200


async def test_a_configured_registry_key_cannot_be_replaced_by_an_answer(
    settings: Settings, registry: Registry
) -> None:
    """node.toml ``registry_public_key``: a registration answer (plain HTTP, perhaps
    rewritten on the path) carrying another key does not replace it."""
    impostor = Registry(Ed25519PrivateKey.generate())
    http = httpx.AsyncClient(transport=httpx.MockTransport(impostor.handler))
    config = node_config(register=True, registry_public_key=registry.signer.public_key)
    svc = NodeService(config, settings, engine=sim_engine(), http_client=http, hardware=Hardware())
    await svc.start()
    try:
        assert svc.agent is not None
        await wait_until(lambda: svc.agent is not None and svc.agent.registered)
        body = _raw(CHAT)
        r = await _post(svc, body, impostor.headers(svc.node_id, body))
        assert r.status_code == 401 and _code(r) == "invalid_signature"
        assert (await _post(svc, body, registry.headers(svc.node_id, body))).status_code == 200
    finally:
        await svc.stop()
        await http.aclose()


def test_a_bad_configured_registry_key_is_an_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="registry_public_key"):
        NodeService(node_config(register=True, registry_public_key="nope"), settings,
                    engine=sim_engine())  # fmt: skip


def test_a_configured_registry_key_in_either_base64_is_the_key_the_registry_sends() -> None:
    """``registry_public_key`` / ``--registry-public-key`` as ``registry public-key`` prints
    it (base64url), padded, or in standard base64 (found 2026-12-04: standard base64 and a
    padded key were refused, or pinned as text the registry's answers never match); a key
    that is neither names the option and the form, not the header X-Mesh-Public-Key."""
    import base64

    from LLM_Mesh.core.b64url import encode
    from LLM_Mesh.node.gateway_guard import GatewayGuard

    raw = b"\xfb\xff" + Ed25519PrivateKey.generate().public_key().public_bytes_raw()[2:]
    sent = encode(raw)  # what the registry's answers carry
    for given in (sent, sent + "=", base64.b64encode(raw).decode(), f" {sent}\n"):
        guard = GatewayGuard("node-a", registering=True, wall_clock=lambda: 0.0,
                             configured_key=given)  # fmt: skip
        assert guard.configured_key == sent and guard.verifier is not None, given
    for bad in ("nope", sent[:-2], encode(raw + b"!")):
        with pytest.raises(ValueError, match=r"registry_public_key .* is not an Ed25519") as info:
            GatewayGuard("node-a", registering=True, wall_clock=lambda: 0.0, configured_key=bad)
        assert "X-Mesh" not in str(info.value) and "registry public-key" in str(info.value)


# --- the session key path only ---------------------------------------------------------


async def _node(settings: Settings, registry: Registry, **config: Any) -> NodeService:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    svc = NodeService(node_config(register=True, **config), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware())  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    return svc


async def test_a_mac_for_another_node_is_refused(settings: Settings, tmp_path: Any) -> None:
    """Two nodes with session keys from one registry: what the gateway sent one of them
    (its MAC, its key) is refused by the other."""
    registry = Registry(Ed25519PrivateKey.generate(), session=True)
    first = await _node(settings, registry)
    second = await _node(Settings.from_env({"LLM_MESH_HOME": str(tmp_path / "b")}), registry)
    try:
        assert first.node_id != second.node_id
        assert first.gateway.has_session and second.gateway.has_session
        body = _raw(CHAT)
        for_second = registry.headers(second.node_id, body)
        assert HDR_GATEWAY_MAC in for_second
        r = await _post(first, body, for_second)
        assert r.status_code == 401 and _code(r) == "invalid_signature"
        # relabelled for the first node: its bytes change, the second node's key does not fit
        r = await _post(first, body, {**for_second, "X-Request-Id": "req-x"})
        assert r.status_code == 401 and "MAC does not verify" in r.json()["error"]["message"]
        assert (await _post(second, body, for_second)).status_code == 200
        assert first.requests_served == 0
    finally:
        await first.stop()
        await second.stop()


async def test_a_stale_agreement_is_refused_after_a_restart(settings: Settings) -> None:
    """The node restarts (same node key, a new X25519 key) and registers again: MACs under
    the agreement with its old process are refused, the new agreement's are served."""
    registry = Registry(Ed25519PrivateKey.generate(), session=True)
    old = await _node(settings, registry)
    body = _raw(CHAT)
    stale = registry.headers(old.node_id, body, rid="req-old")
    await old.stop()
    new = await _node(settings, registry)
    try:
        assert new.node_id == old.node_id and new.gateway.kx_public_key != old.gateway.kx_public_key
        r = await _post(new, body, stale)
        assert r.status_code == 401 and "MAC does not verify" in r.json()["error"]["message"]
        assert (await _post(new, body, registry.headers(new.node_id, body))).status_code == 200
    finally:
        await new.stop()


async def test_a_new_registry_key_drops_the_session(registered: NodeService,
                                                    registry: Registry) -> None:  # fmt: skip
    body = _raw(CHAT)
    other = Registry(Ed25519PrivateKey.generate(), session=True)
    assert registered.gateway.pin_file is not None
    registered.gateway.pin_file.unlink()  # llm-mesh node keys forget-gateway: rotated
    accepted = other.handler(httpx.Request("POST", "http://r/mesh/nodes",
                                           content=_raw(registered.registration().model_dump(
                                               mode="json"))))  # fmt: skip
    registered.gateway.pin(accepted.json())
    assert registered.gateway.registry_id == other.signer.registry_id
    assert registered.gateway.has_session
    r = await _post(registered, body, registry.headers(registered.node_id, body))  # old registry
    assert r.status_code == 401
    assert (
        await _post(registered, body, other.headers(registered.node_id, body))
    ).status_code == 200


async def test_a_rewritten_key_agreement_gives_no_session(settings: Settings) -> None:
    """Someone on the path replaces the registry's X25519 key in the answer: the pinned
    key did not sign it, so the node agrees nothing (MACs 401) and takes signatures."""
    registry = Registry(Ed25519PrivateKey.generate(), session=True)
    mitm = GatewaySigner(Ed25519PrivateKey.generate(), time.time)

    def rewriting(request: httpx.Request) -> httpx.Response:
        answer = registry.handler(request).json()
        if "gateway_kx_key" in answer:
            answer["gateway_kx_key"] = mitm.kx_public_key
        return httpx.Response(200, json=answer)

    http = httpx.AsyncClient(transport=httpx.MockTransport(rewriting))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware())  # fmt: skip
    await svc.start()
    try:
        await wait_until(lambda: svc.gateway.verifier is not None)
        assert not svc.gateway.has_session
        body = _raw(CHAT)
        r = await _post(svc, body, registry.headers(svc.node_id, body))  # the registry's MAC
        assert r.status_code == 401 and "no session key" in r.json()["error"]["message"]
        registry.signer.forget(svc.node_id)
        assert (await _post(svc, body, registry.headers(svc.node_id, body))).status_code == 200
    finally:
        await svc.stop()
        await http.aclose()


async def test_a_configured_registry_key_agrees_a_session_too(settings: Settings) -> None:
    """node.toml ``registry_public_key``: the answer's agreement, signed by that key, is
    taken (no trust on first use for the session key either)."""
    registry = Registry(Ed25519PrivateKey.generate(), session=True)
    svc = await _node(settings, registry, registry_public_key=registry.signer.public_key)
    try:
        await wait_until(lambda: svc.gateway.has_session)
        body = _raw(CHAT)
        headers = registry.headers(svc.node_id, body)
        assert HDR_GATEWAY_MAC in headers
        assert (await _post(svc, body, headers)).status_code == 200
    finally:
        await svc.stop()
