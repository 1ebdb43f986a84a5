"""The tag before the body: the gateway sends the body's SHA-256 (``X-Mesh-Body-SHA256``),
the node verifies the MAC or signature over it before reading the body, then refuses a
body with another SHA-256 (``core/gateway_auth.py``: "The tag before the body"; found
2026-12-03: forged headers with a random tag made a node read and hash 16 MiB first).

Through the real node app with the chunk-counting ``receive`` of
``test_gateway_guard_unread.py``, against a signing registry and one with a session key;
the last tests run the real registry + gateway (``tests/inprocess_mesh.py``)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gateway_auth import (
    HDR_BODY_SHA256,
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    GatewayVerifier,
)
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.service import NodeService
from tests.inprocess_mesh import InProcessMesh
from tests.node import test_gateway_guard as tg
from tests.node.conftest import node_config, sim_engine, wait_until
from tests.node.test_gateway_guard_unread import LIMIT, CountedBody, _b64, _call, _code

registry = tg.registry
registered = tg.registered  # its registry's answer says nothing of the header (older)


class NewerRegistry(tg.Registry):
    """A registry whose answer says its gateway sends the header (as the real one does)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        answer = super().handler(request)
        if request.method == "POST" and request.url.path == "/mesh/nodes":
            return httpx.Response(200, json={**answer.json(), "gateway_body_sha256": True})
        return answer


@pytest.fixture(params=["signature", "session"])
def newer(request: pytest.FixtureRequest) -> NewerRegistry:
    return NewerRegistry(Ed25519PrivateKey.generate(), session=request.param == "session")


@pytest.fixture
async def announced(settings: Settings, newer: NewerRegistry) -> AsyncIterator[NodeService]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(newer.handler))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    assert svc.gateway.has_session == newer.session
    yield svc
    await svc.stop()
    await http.aclose()


def _verifier(svc: NodeService) -> GatewayVerifier:
    assert svc.gateway.verifier is not None
    return svc.gateway.verifier


def _forged(honest: dict[str, str]) -> dict[str, str]:
    """Plausible headers anyone can make: the public registry id, a fresh time, a random tag
    of the right length, a SHA-256."""
    name = tg._auth_header(honest)
    size = 32 if name == HDR_GATEWAY_MAC else 64
    return {**honest, name: _b64(os.urandom(size)), HDR_BODY_SHA256: os.urandom(32).hex()}


@pytest.mark.parametrize("declared", [LIMIT, None], ids=["16MiB", "chunked"])
async def test_forged_headers_with_a_digest_are_refused_unread(
    registered: NodeService, registry: tg.Registry, declared: int | None
) -> None:
    """A random signature or MAC beside a declared SHA-256: 401 before a byte of the body
    (before: the 16 MiB were read and hashed, then the tag refused). A node of an older
    registry (``registered``) checks the header when it comes too."""
    headers = _forged(registry.headers(registered.node_id, tg._raw(tg.CHAT)))
    body = CountedBody(size=LIMIT)
    status, answer = await _call(registered, headers, body, declared=declared)
    assert (status, _code(answer)) == (401, "invalid_signature")
    assert "does not verify" in answer["error"]["message"]
    assert body.handed == 0
    assert registered.requests_served == 0 and registered.gateway.refused == 1


async def test_a_body_that_is_not_the_declared_one_is_refused_and_its_headers_burnt(
    registered: NodeService, registry: tg.Registry
) -> None:
    """The gateway's own headers (their tag verifies over the declared SHA-256) with another
    body: 401 and not served; the headers are remembered as used, so whoever captured them
    cannot have 16 MiB read again with them, nor the honest body served afterwards."""
    raw = tg._raw(tg.CHAT)
    headers = registry.headers(registered.node_id, raw)
    other = tg._raw({**tg.CHAT, "max_tokens": 500})
    status, answer = await _call(registered, headers, CountedBody(other), declared=len(other))
    assert (status, _code(answer)) == (401, "invalid_signature")
    assert "not the one the gateway signed" in answer["error"]["message"]
    assert registered.requests_served == 0
    assert len(_verifier(registered).cache) == 1
    again = CountedBody(size=LIMIT)
    status, answer = await _call(registered, headers, again, declared=LIMIT)
    assert (status, _code(answer)) == (401, "replayed_message") and again.handed == 0
    status, _ = await _call(registered, headers, CountedBody(raw), declared=len(raw))
    assert status == 401 and registered.requests_served == 0
    fresh = registry.headers(registered.node_id, raw, rid="req-2")
    status, answer = await _call(registered, fresh, CountedBody(raw), declared=len(raw))
    assert status == 200 and answer["choices"][0]["message"]["content"]


async def test_once_announced_a_request_without_the_header_is_refused_unread(
    announced: NodeService, newer: NewerRegistry
) -> None:
    """Leaving the header out does not bring back the read-first check once the registry
    said its gateway sends it; the gateway's requests (with it) are served."""
    raw = tg._raw(tg.CHAT)
    honest = newer.headers(announced.node_id, raw)
    without = {k: v for k, v in honest.items() if k != HDR_BODY_SHA256}
    for headers in (without, _forged(without) | {HDR_BODY_SHA256: ""}):
        body = CountedBody(size=LIMIT)
        status, answer = await _call(announced, headers, body, declared=LIMIT)
        assert (status, _code(answer)) == (401, "invalid_signature")
        assert body.handed == 0  # before: 16 MiB read and hashed, then refused
        assert HDR_BODY_SHA256 in answer["error"]["message"]
    status, answer = await _call(announced, honest, CountedBody(raw), declared=len(raw))
    assert status == 200 and announced.requests_served == 1
    assert _verifier(announced).require_digest


async def test_an_answer_without_it_later_does_not_undo_it(
    announced: NodeService, newer: NewerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.node.gateway")
    announced.gateway.pin({"registry_public_key": newer.signer.public_key})
    assert _verifier(announced).require_digest
    assert "still requires it" in caplog.text


async def test_an_older_registry_keeps_the_read_first_check(
    registered: NodeService, registry: tg.Registry
) -> None:
    """Newer node, older registry (no ``gateway_body_sha256`` in its answer, no header): the
    request is served as before, its tag checked with the body."""
    raw = tg._raw(tg.CHAT)
    headers = registry.headers(registered.node_id, raw)
    headers.pop(HDR_BODY_SHA256, None)
    body = CountedBody(raw)
    status, answer = await _call(registered, headers, body, declared=len(raw))
    assert status == 200 and answer["choices"][0]["message"]["content"]
    assert body.offset == len(raw) and registered.requests_served == 1
    assert not _verifier(registered).require_digest


@pytest.mark.parametrize("path", ["mac", "signature"])
def test_the_real_gateway_sends_it_and_its_node_requires_it(
    inprocess_mesh: InProcessMesh, path: str
) -> None:
    """The registry app with its real signer: its answer announces the header, the node
    requires it, and the gateway's forwarded requests carry it and are served (the session
    key's MAC, or the signature when the registry holds no session key for the node)."""
    mesh = inprocess_mesh
    node = mesh.add_node("gemma-3-270m")
    verifier = node.service.gateway.verifier
    assert verifier is not None and verifier.session_key
    if path == "signature":
        mesh.app.state.runtime.signer.forget(node.node_id)
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    (sent,) = mesh.router.forwarded
    assert (HDR_GATEWAY_MAC if path == "mac" else HDR_GATEWAY_SIGNATURE) in sent.headers
    digest = sent.headers[HDR_BODY_SHA256]
    assert len(digest) == 64 and node.service.requests_served == 1
    assert verifier.require_digest


class HeartbeatSays(tg.Registry):
    """An older registry's registration answer (nothing of the header), heartbeat answers
    that name ``registry_id`` (default: its own) and say ``says`` (None: nothing) of it: the
    registry upgraded, or rolled back, while the node runs."""

    def __init__(self, key: Ed25519PrivateKey, *, session: bool = False) -> None:
        super().__init__(key, session=session)
        self.says: bool | None = None
        self.registry_id = self.signer.registry_id

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/heartbeat"):
            said = {} if self.says is None else {"gateway_body_sha256": self.says}
            return httpx.Response(200, json={"ok": True, "registry_id": self.registry_id, **said})
        return super().handler(request)


async def _without_header(svc: NodeService, reg: tg.Registry) -> tuple[int, int]:
    """A gateway request without the header: its status, and the body bytes read."""
    raw = tg._raw(tg.CHAT)
    headers = reg.headers(svc.node_id, raw)
    headers.pop(HDR_BODY_SHA256, None)
    body = CountedBody(raw)
    status, _ = await _call(svc, headers, body, declared=len(raw))
    return status, body.offset


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
async def test_a_heartbeat_answer_teaches_it_and_a_rollback_undoes_it_once(
    settings: Settings, session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04: only the registration's answer was read, so a node registered with
    an older registry (or whose answer was lost) never required the header."""
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.gateway")
    reg = HeartbeatSays(Ed25519PrivateKey.generate(), session=session)
    http = httpx.AsyncClient(transport=httpx.MockTransport(reg.handler))
    tls = Settings(home=settings.home, registry_url="https://registry.test")  # TLS: see below
    svc = NodeService(node_config(register=True), tls, engine=sim_engine(),
                      http_client=http, hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
    await svc.start()
    try:
        await wait_until(lambda: svc.gateway.verifier is not None)
        agent = svc.agent
        assert agent is not None and not _verifier(svc).require_digest
        assert await agent.send_heartbeat()  # says nothing: as before
        assert not _verifier(svc).require_digest
        reg.says = True  # the registry was upgraded
        reg.registry_id = "another-gateway"  # not the pinned one's word: not taken
        assert await agent.send_heartbeat()
        assert not _verifier(svc).require_digest
        agent.registered = True  # (its other id made the agent register again: not here)
        reg.registry_id = reg.signer.registry_id
        assert await agent.send_heartbeat()
        assert _verifier(svc).require_digest
        status, read = await _without_header(svc, reg)
        assert (status, read) == (401, 0)  # refused unread
        reg.says = None  # an answer without it does not undo it
        assert await agent.send_heartbeat() and _verifier(svc).require_digest
        caplog.clear()
        reg.says = False  # rolled back: its gateway no longer sends it
        for _ in range(3):
            assert await agent.send_heartbeat()
        assert not _verifier(svc).require_digest
        warned = [r for r in caplog.records if "no longer sends" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING
        status, read = await _without_header(svc, reg)
        assert status == 200 and read > 0  # served, its tag checked with the body
    finally:
        await svc.stop()
        await http.aclose()


class AnswersSay(HeartbeatSays):
    """:class:`HeartbeatSays` whose registration answer says ``registered_says`` of it."""

    def __init__(self, key: Ed25519PrivateKey, *, session: bool = False) -> None:
        super().__init__(key, session=session)
        self.registered_says: bool | None = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        answer = super().handler(request)
        if request.method == "POST" and request.url.path == "/mesh/nodes":
            said = (
                {}
                if self.registered_says is None
                else {"gateway_body_sha256": self.registered_says}
            )
            return httpx.Response(answer.status_code, json={**answer.json(), **said})
        return answer


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
async def test_over_plain_http_no_answer_relaxes_it(
    settings: Settings, session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-04 (review): a heartbeat's or registration's answer saying ``false``
    relaxed the requirement, and over plain http to another host (``settings``: the
    operator's opt-in) anyone on the path can answer with the pinned gateway's public id
    or key: the unread refusal was back to the read-first check. Nothing the gateway's key
    signs is in those answers, so only TLS (or loopback) makes a ``false`` the registry's."""
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.gateway")
    reg = AnswersSay(Ed25519PrivateKey.generate(), session=session)
    http = httpx.AsyncClient(transport=httpx.MockTransport(reg.handler))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
    await svc.start()
    try:
        await wait_until(lambda: svc.gateway.verifier is not None)
        agent = svc.agent
        assert agent is not None and _verifier(svc).require_digest
        reg.says = False  # the heartbeats' answers, with the pinned gateway's id
        for _ in range(3):
            assert await agent.send_heartbeat()
        assert _verifier(svc).require_digest
        reg.registered_says = False  # a registration's answer, with the pinned key
        assert await agent.register()
        assert _verifier(svc).require_digest
        warned = [r for r in caplog.records if "anyone on the path" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING
        assert "http://registry.test" in warned[0].getMessage()
        assert not any("accepts requests without it" in r.getMessage() for r in caplog.records)
        assert await _without_header(svc, reg) == (401, 0)  # still refused unread
    finally:
        await svc.stop()
        await http.aclose()
