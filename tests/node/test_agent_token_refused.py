"""A node whose operator token the registry does not know stops: found 2026-12-05
(polish32, from a new user's walk): the registry's 401 ``invalid_credential`` ("unknown
operator token ...") was logged and the registration retried with the backoff for ever.
A refusal a retry can change (a network error, a 5xx, a 401 for a stale clock) is still
retried. MockTransport for the agent; a real loopback socket for ``NodeManager.serve``."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.revoked_notice import TOKEN_REFUSED_EXIT, is_token_refused
from LLM_Mesh.errors import RegistrationRefused
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node_manager import NodeManager
from tests.node.fake_registry import FakeRegistry, make_agent
from tests.ports import free_port

UNKNOWN = (
    "unknown operator token: not one this registry made (a typo, or another registry's or "
    "home's); its admin makes one with `llm-mesh registry operators add NAME`"
)


def _error(code: str, message: str = UNKNOWN) -> dict[str, object]:
    return {"error": {"message": message, "type": "authentication_error", "code": code}}


class Answering(FakeRegistry):
    def __init__(self, status: int, body: object) -> None:
        super().__init__()
        self.status, self.body = status, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, None))
        return httpx.Response(self.status, json=self.body)


async def test_an_unknown_operator_token_ends_the_loop_once_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.agent")
    told: list[str] = []
    reg = Answering(401, _error("invalid_credential"))
    agent = make_agent(reg, on_fatal=told.append)
    await asyncio.wait_for(agent.run(), 30)  # before the fix: never returned
    assert len(reg.calls) == 1  # asked once
    assert told == [agent.fatal] and UNKNOWN in (agent.fatal or "")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and UNKNOWN in errors[0].getMessage()
    assert "not registering again" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, _error("stale_message", "clock off")),  # the clock: fixable without a restart
        (401, _error("invalid_signature", "bad")),
        (403, _error("invalid_credential")),  # not the registry's answer to a bad token
        (503, _error("invalid_credential")),
        (401, {"error": "invalid_credential"}),
        (401, "not json"),
    ],
)
async def test_other_refusals_are_retried(status: int, body: object) -> None:
    told: list[str] = []
    agent = make_agent(Answering(status, body), on_fatal=told.append)
    delays = [await agent.step() for _ in range(3)]
    assert delays == [1.0, 2.0, 4.0]
    assert agent.fatal is None and told == []


async def test_a_network_error_is_retried() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    told: list[str] = []
    agent = make_agent(FakeRegistry(), on_fatal=told.append)
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    assert [await agent.step() for _ in range(2)] == [1.0, 2.0]
    assert agent.fatal is None and told == []


def test_the_rule() -> None:
    assert is_token_refused(401, _error("invalid_credential"))
    assert not is_token_refused(401, _error("unauthorized"))
    assert not is_token_refused(400, _error("invalid_credential"))
    assert not is_token_refused(401, None)


async def _registry_saying_401(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A registry at a real socket that refuses every message with the token's 401."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    await reader.readexactly(length)
    body = json.dumps(_error("invalid_credential")).encode()
    writer.write(
        b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


async def test_the_node_process_stops_with_the_registrys_words(tmp_path: Path) -> None:
    server = await asyncio.start_server(_registry_saying_401, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = NodeConfig(
        engine="sim", models=["m"], port=free_port(), sim_ttft_s=0,
        registry_url=f"http://127.0.0.1:{port}", operator_token="lmo_not_made_here",
    )  # fmt: skip
    mgr = NodeManager(cfg, Settings(home=tmp_path))
    try:
        with pytest.raises(RegistrationRefused) as caught:
            await asyncio.wait_for(mgr.serve(), 60)  # before the fix: served on
    finally:
        server.close()
    assert UNKNOWN in str(caught.value)
    assert not mgr.service.started and mgr._server is None
    assert TOKEN_REFUSED_EXIT == 78  # the unit's RestartPreventExitStatus (setup script)


async def test_a_node_that_knows_its_registrys_key_is_not_stopped_by_an_unsigned_401() -> None:
    """Found 2026-12-05 (the lead, merging polish32 beside attack32b): the 401 is not
    signed, so anyone answering at the registry's URL (plain http on the path, or relaying
    the registration with the token swapped: attack32b's 401) stopped for good a node that
    has registered before and pins the registry's key, as a forged 403 ``revoked`` may not
    (docs/security.md, "Hostile registry → node operator"). Such a node retries."""
    from LLM_Mesh.core.revocation_proof import TrustedKey

    reg = Answering(401, _error("invalid_credential"))
    told: list[str] = []
    agent = make_agent(reg, on_fatal=told.append, registry_key=lambda: TrustedKey("k" * 43))
    for _ in range(3):
        assert await agent.register() is False
    assert len(reg.calls) == 3 and agent.fatal is None and told == []
    assert UNKNOWN in (agent.last_error or "")
