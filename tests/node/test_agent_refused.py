"""A registration refused for good reason (403 ``plain_http_remote``, a bad token): the
registry's words are logged in full once, each repeat is one short line, the waits grow to
the backoff's cap, and an accepted registration (or other words) logs in full again.
MockTransport: no sockets."""

from __future__ import annotations

import logging
from itertools import pairwise

import httpx
import pytest

from LLM_Mesh.node.agent import NodeAgent
from tests.node.fake_registry import FakeRegistry, make_agent

LOGGER = "LLM_Mesh.node.agent"
ADVICE = "serve https: `llm-mesh node tls init` ... " + "x" * 400


class Refusing(FakeRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.code: str | None = "forbidden"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.code is None:
            return super().__call__(request)
        self.calls.append((request.method, request.url.path, None))
        err = {"message": ADVICE, "type": "permission_error", "code": self.code}
        return httpx.Response(403, json={"error": err})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


async def test_the_same_refusal_is_said_in_full_once_then_briefly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = Refusing()
    agent = make_agent(reg)
    delays = [await agent.step() for _ in range(9)]
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[-2:] == [agent.backoff.cap_s] * 2  # the backoff's cap, not faster
    said = _warnings(caplog)
    assert len(said) == 9
    assert ADVICE in said[0] and "HTTP 403" in said[0]
    for line in said[1:]:
        assert ADVICE[:20] not in line and len(line) < 120, line
        assert line.startswith("registration refused again (HTTP 403, as above)")
    assert ADVICE in (agent.last_error or "")  # `node info` still shows the whole refusal

    reg.code = "invalid_credential"  # other words: in full again
    caplog.clear()
    await agent.step()
    assert ADVICE in _warnings(caplog)[0]

    reg.code = None  # accepted; a later refusal is told in full again
    assert await agent.step() == 7.0 and agent.registered
    agent.registered = False
    reg.code = "forbidden"
    caplog.clear()
    await agent.step()
    assert ADVICE in _warnings(caplog)[0]


class PlainHttpRefusing(FakeRegistry):
    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, None))
        err = {
            "message": ADVICE,
            "type": "permission_error",
            "code": "forbidden",
            "reason": "plain_http_remote",
        }
        return httpx.Response(403, json={"error": err})


async def test_a_plain_http_refusal_is_one_error_then_long_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-04: a node refused for plain http (403 ``plain_http_remote``) asked
    again every few seconds forever; it waits as a revoked node does now (1 min, doubling,
    at most 15 min), says it once as an ERROR, then one short line a try."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    agent = make_agent(PlainHttpRefusing())
    delays = [await agent.step() for _ in range(7)]
    assert delays == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    records = [r for r in caplog.records if r.name == LOGGER and r.levelno >= 30]
    assert records[0].levelno == logging.ERROR and ADVICE in records[0].getMessage()
    assert "registering again in 60 s" in records[0].getMessage()
    for r in records[1:]:
        assert r.levelno == logging.WARNING and len(r.getMessage()) < 120, r.getMessage()


PLAIN = {"message": ADVICE, "type": "permission_error", "code": "forbidden",
         "reason": "plain_http_remote"}  # fmt: skip
REVOKED = {"message": "node node-a is revoked", "type": "permission_error", "code": "revoked"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Answering:
    """Registries by host, each answering every message with the 403 it is set to."""

    def __init__(self, **says: dict[str, str]) -> None:
        self.says = says
        self.posts: dict[str, list[float]] = {host: [] for host in says}
        self.clock = Clock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts[request.url.host].append(self.clock.now)
        return httpx.Response(403, json={"error": self.says[request.url.host]})


def _answering_agent(registries: Answering) -> NodeAgent:
    agent = make_agent(
        FakeRegistry(),
        registry_url=[f"http://{host}" for host in registries.says],
        clock=registries.clock,
    )
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(registries))
    return agent


async def test_a_recheck_refused_for_plain_http_keeps_the_long_waits_of_the_others() -> None:
    """Found 2026-12-04 (review): r1 revoked the node and r2 refuses it for plain http; each
    re-check of r1 that heard ``plain_http_remote`` (a revoked key is refused for the
    transport rule before its claim) reset the count of r2's refusals, so r2 was asked every
    1-2 min for ever. A re-check leaves the registration's waits as they were: r2 is asked
    after 1 min, doubling up to 15 min, and r1 on its own schedule (the same waits)."""
    registries = Answering(r1=REVOKED, r2=PLAIN)
    agent = _answering_agent(registries)
    clock = registries.clock
    delay = await agent.step()  # r1: revoked (re-check in 1 min); r2 at once: plain http
    registries.says["r1"] = PLAIN  # what its re-checks hear now
    while clock.now < 1000.0 + 2700.0:
        clock.now += delay
        delay = await agent.step()
    gaps = {h: [b - a for a, b in pairwise(t)] for h, t in registries.posts.items()}
    assert gaps["r2"] == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0], registries.posts
    assert gaps["r1"][1:] == [120.0, 240.0, 480.0, 900.0, 900.0], registries.posts
    assert "http://r1" in agent.revoked and not agent.registered


async def test_a_recheck_refused_for_plain_http_says_it_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-04 (review): the registration's answer ``plain_http_remote`` is one
    ERROR in words; heard by a re-check of a registry that revoked the node it was a
    WARNING. Now as a registration says it; the re-checks keep their waits (1 min, doubling,
    at most 15 min) and nothing else is sent there (the registry still does not route it)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    registries = Answering(r1=REVOKED)
    agent = _answering_agent(registries)
    clock = registries.clock
    assert await agent.step() == 60.0
    registries.says["r1"] = PLAIN
    caplog.clear()
    delays = []
    for _ in range(6):
        clock.now += delays[-1] if delays else 60.0
        delays.append(await agent.step())
    assert delays == [120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    assert len(registries.posts["r1"]) == 7  # one registration a re-check, nothing else
    records = [r for r in caplog.records if r.name == LOGGER and r.levelno >= 30]
    assert records[0].levelno == logging.ERROR and ADVICE in records[0].getMessage()
    for r in records[1:]:
        assert r.levelno == logging.WARNING and len(r.getMessage()) < 120, r.getMessage()
    assert ADVICE in (agent.last_error or "")
