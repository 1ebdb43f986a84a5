"""The node agent's goodbye (deregistration): tried again signed anew after a timeout or a 5xx,
within its budget and the shutdown's deadline, skipped at once when refused (saying when the
registry forgets the node), and none from a node that never registered."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import NodeSigner
from tests.node.fake_registry import FakeRegistry, Replicas, make_agent, replica_agent


class _SlowRegistry(FakeRegistry):
    """Its first ``slow`` DELETEs time out (a loaded registry); ``clock`` moves 2 s each."""

    def __init__(self, slow: int, clock: list[float]) -> None:
        super().__init__()
        self.slow = slow
        self.clock = clock

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and self.slow > 0:
            self.slow -= 1
            self.calls.append((request.method, request.url.path, None))
            self.clock[0] += 2.0
            raise httpx.ReadTimeout("timed out", request=request)
        return super().__call__(request)


async def test_a_goodbye_that_timed_out_is_tried_again_signed_anew() -> None:
    now = [0.0]
    reg = _SlowRegistry(slow=1, clock=now)
    seqs: list[str] = []
    handler = reg.__call__

    def recording(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            seqs.append(request.headers["X-Mesh-Seq"])
        return handler(request)

    agent = make_agent(
        reg, clock=lambda: now[0], signer=NodeSigner(Ed25519PrivateKey.generate(), time.time)
    )
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(recording))
    await agent.step()
    await agent.stop()
    assert reg.paths()[-2:] == ["DELETE /mesh/nodes/node-a"] * 2
    assert len(set(seqs)) == 2  # a fresh sequence number: not refused as a replay
    assert not agent.registered and agent.last_error is None
    assert "node-a" not in reg.known  # the registry took the goodbye


async def test_a_goodbye_gives_up_within_its_budget() -> None:
    now = [0.0]
    reg = _SlowRegistry(slow=99, clock=now)
    agent = make_agent(reg, clock=lambda: now[0])  # 3 tries of 2 s in 6 s: the budget's end
    await agent.step()
    assert not await agent.deregister()
    assert reg.paths().count("DELETE /mesh/nodes/node-a") == 3
    assert agent.last_error is not None and "deregistration failed" in agent.last_error
    now[0] = 0.0
    reg.slow = 99
    agent = make_agent(reg, clock=lambda: now[0], deregister_budget_s=3.0)
    await agent.step()
    before = len(reg.calls)
    assert not await agent.deregister()  # 2 s, then 1 s left: the second try, then no time
    assert reg.paths()[before:] == ["DELETE /mesh/nodes/node-a"] * 2


async def test_a_refused_goodbye_is_skipped_at_once_and_says_when_the_registry_forgets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection refused: nothing listens, the registry is gone; no second try (its
    heartbeats expire anyway), and the log says after how long (the registry's expiry)."""
    reg = FakeRegistry()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    agent = make_agent(reg, sleep=sleep)
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(_with_expiry(reg, 21.0)))
    await agent.step()
    assert agent.heartbeat_expiry_s == 21.0
    reg.down = True  # ConnectError: refused
    with caplog.at_level("WARNING", logger="LLM_Mesh.node.agent"):
        assert not await agent.deregister()
    assert reg.paths().count("DELETE /mesh/nodes/node-a") == 1
    assert slept == []
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "goodbye skipped" in said[0], said
    assert "registry unreachable at http://registry.test" in said[0]
    assert "heartbeats expire after 21 s" in said[0]


def _with_expiry(reg: FakeRegistry, expiry_s: float) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        r = reg(request)
        if request.method == "POST" and request.url.path == "/mesh/nodes":
            return httpx.Response(r.status_code, json={**r.json(), "heartbeat_expiry_s": expiry_s})
        return r

    return handler


async def test_without_the_registrys_expiry_the_default_rule_is_said() -> None:
    reg = FakeRegistry()  # an older registry: no heartbeat_expiry_s in its answer
    agent = make_agent(reg)
    await agent.step()
    reg.down = True
    assert not await agent.deregister()
    assert agent.last_error is not None
    assert "heartbeats expire after 21 s" in agent.last_error  # 3 × its 7 s interval


async def test_a_goodbye_ends_at_the_shutdowns_deadline_however_many_tries_are_left() -> None:
    """The deadline given to stop() (the shutdown's, shared with the drain) wins over the
    goodbye's own budget: timeouts are tried again only while it allows."""
    now = [100.0]
    reg = _SlowRegistry(slow=99, clock=now)  # every DELETE times out after 2 s
    agent = make_agent(reg, clock=lambda: now[0], deregister_tries=10)
    await agent.step()
    await agent.stop(deadline=103.0)  # 2 s, then 1 s left: a second try, then no time
    assert reg.paths().count("DELETE /mesh/nodes/node-a") == 2
    assert now[0] <= 105.0  # the fake transport moves 2 s a try, past the cap it was given
    assert agent.last_error is not None
    assert "deregistration failed after 2 tries" in agent.last_error
    assert "heartbeats expire after 21 s" in agent.last_error
    now[0] = 200.0
    reg.slow = 99
    agent = make_agent(reg, clock=lambda: now[0])
    await agent.step()
    before = len(reg.calls)
    await agent.stop(deadline=200.0)  # no time left at all: nothing sent
    assert reg.calls[before:] == []


async def test_a_goodbye_answered_5xx_is_tried_again_within_its_budget() -> None:
    reg = FakeRegistry()
    answers = [503, 502]

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and answers:
            reg.calls.append((request.method, request.url.path, None))
            return httpx.Response(answers.pop(0))
        return reg(request)

    agent = make_agent(reg)
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(flaky))
    await agent.step()
    assert await agent.deregister()
    assert reg.paths().count("DELETE /mesh/nodes/node-a") == 3
    assert agent.last_error is None and "node-a" not in reg.known


async def test_one_replica_refused_one_timed_out_the_goodbye_is_tried_again() -> None:
    """Only when every registry refused is the goodbye skipped: a replica that timed out
    may be alive and loaded."""
    replicas = Replicas("r1.test", "r2.test")
    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"])
    await agent.step()
    replicas.regs["r1.test"].down = True  # refused
    timeouts = [1]
    handler = replicas.__call__

    def r2_slow_once(request: httpx.Request) -> httpx.Response:
        if request.url.host == "r2.test" and request.method == "DELETE" and timeouts:
            timeouts.pop()
            raise httpx.ReadTimeout("timed out", request=request)
        return handler(request)

    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(r2_slow_once))
    assert await agent.deregister()
    assert replicas.hits("r2.test")[-1] == "DELETE /mesh/nodes/node-a"  # the second try


async def test_a_node_that_never_registered_says_no_goodbye() -> None:
    reg = FakeRegistry()
    reg.down = True
    agent = make_agent(reg)
    await agent.step()
    await agent.stop()
    assert "DELETE /mesh/nodes/node-a" not in reg.paths()
