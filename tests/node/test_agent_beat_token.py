"""The node agent keeps the registry's beat token and sends it back (beattoken38;
the registry's side: tests/registry/test_beattoken38_tokens.py)."""

from __future__ import annotations

import itertools
import json

import httpx

from LLM_Mesh.core.identity import HDR_BEAT_TOKEN, MessageKind
from tests.node.fake_registry import REG, FakeRegistry, make_agent

OTHER = "http://registry-b.test"


class TokenRegistry(FakeRegistry):
    """A :class:`FakeRegistry` that answers each registration and heartbeat with a fresh
    ``beat_token`` (``tokens``: what it answers, ``None``: none, an older registry) and
    records the token each request carried."""

    def __init__(self, tokens: object = None) -> None:
        super().__init__()
        self.sent: list[tuple[str, str | None]] = []
        counter = itertools.count()
        self.tokens = tokens or (f"tok{n:04d}-{'a' * 16}" for n in counter)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path, request.headers.get(HDR_BEAT_TOKEN)))
        r = super().__call__(request)
        if r.status_code != 200:
            return r
        token = next(self.tokens)  # type: ignore[call-overload]
        answer = json.loads(r.content)
        if token is not None:
            answer["beat_token"] = token
        return httpx.Response(200, json=answer)


async def test_the_agent_sends_back_the_last_token_with_its_heartbeats_and_goodbye() -> None:
    reg = TokenRegistry()
    agent = make_agent(reg)
    await agent.step()  # registers: no token sent, one answered
    for _ in range(3):
        await agent.step()
    await agent.stop()  # the goodbye carries the last one
    hb = "/mesh/nodes/node-a/heartbeat"
    assert reg.sent == [
        ("/mesh/nodes", None),
        (hb, "tok0000-" + "a" * 16),
        (hb, "tok0001-" + "a" * 16),
        (hb, "tok0002-" + "a" * 16),
        ("/mesh/nodes/node-a", "tok0003-" + "a" * 16),
    ]
    assert agent.beat_token.get(REG) == "tok0003-" + "a" * 16
    registration = reg.calls[0][2]
    assert registration is not None and registration["beat_tokens"] is True  # said, signed


async def test_a_token_of_another_form_or_none_is_not_kept() -> None:
    """An older registry answers none: nothing sent. A token that is no header value (a
    newline, too long, too short) is not kept: the last good one goes on."""
    reg = TokenRegistry(
        iter([None, None, "good-token-1234567890", "bad\ntoken-123456789", "x" * 65, "short"])
    )
    agent = make_agent(reg)
    for _ in range(6):
        await agent.step()
    assert [t for _, t in reg.sent] == [None, None, None] + ["good-token-1234567890"] * 3
    assert agent.heartbeats_sent == 5


async def test_each_registry_its_own_token() -> None:
    """Replicas' tokens are each process's: the agent keeps each URL's and sends a registry
    only what that registry answered."""
    a, b = TokenRegistry(), TokenRegistry(f"b{n}-{'b' * 16}" for n in itertools.count())

    def either(request: httpx.Request) -> httpx.Response:
        return (a if request.url.host == "registry.test" else b)(request)

    agent = make_agent(a, registry_url=[REG, OTHER])
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(either))
    await agent.step()  # registers at REG
    a.down = True  # REG unreachable: its heartbeat goes to OTHER, which does not know it
    await agent.step()  # 404 there: registers at OTHER
    await agent.step()
    hb = "/mesh/nodes/node-a/heartbeat"
    assert b.sent == [(hb, None), ("/mesh/nodes", None), (hb, "b0-" + "b" * 16)]
    assert agent.beat_token.get(REG) == "tok0000-" + "a" * 16
    # a registration carries the token too (regtoken40; before, none)
    assert agent.beat_token.header(OTHER, MessageKind.REGISTER) == {
        HDR_BEAT_TOKEN: "b1-" + "b" * 16
    }


async def test_a_re_registration_carries_the_last_token() -> None:
    """Told to register again (a 404), the agent sends the registry's last token with the
    registration: past a count of its key's refused re-registrations that a stranger spent,
    the registry still verifies it (regtoken40). Before, registrations carried none."""
    reg = TokenRegistry()
    agent = make_agent(reg)
    await agent.step()  # registers
    await agent.step()  # beats
    reg.forget()
    await agent.step()  # 404: registers again at once
    hb = "/mesh/nodes/node-a/heartbeat"
    assert reg.sent[:4] == [
        ("/mesh/nodes", None),
        (hb, "tok0000-" + "a" * 16),
        (hb, "tok0001-" + "a" * 16),
        ("/mesh/nodes", "tok0001-" + "a" * 16),
    ]
