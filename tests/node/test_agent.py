"""Registration + heartbeat agent, against httpx.MockTransport (no sockets, no real time)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from LLM_Mesh.core.schemas import Heartbeat, HostedModel, NodeRegistration
from LLM_Mesh.node.agent import Backoff, NodeAgent
from tests.node.conftest import wait_until
from tests.node.fake_registry import REG, FakeRegistry, Replicas, make_agent, replica_agent


async def test_registers_then_heartbeats() -> None:
    reg = FakeRegistry()
    agent = make_agent(reg)
    assert await agent.step() == 7.0  # the registry's interval is adopted
    assert agent.registered
    assert await agent.step() == 7.0
    assert reg.paths() == ["POST /mesh/nodes", "POST /mesh/nodes/node-a/heartbeat"]
    hb = reg.calls[1][2]
    assert hb is not None and hb["in_flight"] == 1 and hb["queued"] == 2
    assert agent.heartbeats_sent == 1


async def test_registry_down_backs_off_capped_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failure's line says when the node tries again (found 2026-12-03: a node whose
    registry was down at start logged ``registry unreachable at URL: ConnectError(...)``
    and nothing of the retries)."""
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.node.agent")
    reg = FakeRegistry()
    reg.down = True
    agent = make_agent(reg, backoff=Backoff(initial_s=1, factor=2, cap_s=5))
    delays = [await agent.step() for _ in range(5)]
    assert delays == [1, 2, 4, 5, 5]
    said = [r.getMessage() for r in caplog.records if r.name == "LLM_Mesh.node.agent"]
    assert [m.rsplit(": ", 1)[1] for m in said] == [
        f"registering again in {d} s" for d in delays
    ], said
    assert not agent.registered and "unreachable" in (agent.last_error or "")
    reg.down = False
    assert await agent.step() == 7.0
    assert agent.registered and agent.backoff.failures == 0


async def test_unknown_node_reregisters_at_once() -> None:
    reg = FakeRegistry()
    agent = make_agent(reg)
    await agent.step()
    reg.forget()
    assert await agent.step() == 7.0
    assert reg.paths()[-2:] == ["POST /mesh/nodes/node-a/heartbeat", "POST /mesh/nodes"]
    assert agent.registered and agent.registrations == 2


async def test_heartbeat_failure_keeps_registration() -> None:
    reg = FakeRegistry()
    agent = make_agent(reg)
    await agent.step()
    reg.down = True
    assert await agent.step() == 7.0
    assert agent.registered and agent.last_error


async def test_stop_deregisters_best_effort() -> None:
    reg = FakeRegistry()
    agent = make_agent(reg)
    await agent.step()
    await agent.stop()
    assert reg.paths()[-1] == "DELETE /mesh/nodes/node-a"
    assert not agent.registered
    # a registry that is gone by then does not make stop() fail
    agent2 = make_agent(reg)
    await agent2.step()
    reg.down = True
    await agent2.stop()


async def test_a_goodbye_the_registry_took_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Found 2026-12-05 (newuser31): a node stopped with Ctrl-C logged "registered ..." at
    its start but nothing of its goodbye: its operator could not tell from the log whether
    the registry took it out of routing at once or waits for its heartbeats to expire."""
    reg = FakeRegistry()
    agent = make_agent(reg)
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.agent")
    await agent.step()
    await agent.stop()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("deregistered node-a" in m and "out of routing now" in m for m in said), said


async def test_run_loop_with_fake_sleep_and_wake() -> None:
    reg = FakeRegistry()
    delays: list[float] = []
    resume = asyncio.Event()

    async def sleep(s: float) -> None:
        delays.append(s)
        await resume.wait()  # "time" only passes when the test says so

    agent = make_agent(reg, sleep=sleep)
    agent.start()
    await wait_until(lambda: bool(delays))
    assert agent.registered and delays == [7.0]
    agent.wake()  # state changed: heartbeat now, not in 7 s
    await wait_until(lambda: len(delays) >= 2)
    assert reg.paths()[-1] == "POST /mesh/nodes/node-a/heartbeat"
    await agent.stop()
    assert reg.paths()[-1] == "DELETE /mesh/nodes/node-a"


async def test_run_survives_unexpected_errors() -> None:
    reg = FakeRegistry()
    calls = 0

    def registration() -> NodeRegistration:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) >= 3:
            await asyncio.Event().wait()

    agent = make_agent(reg, sleep=sleep)
    agent._registration = registration
    agent.start()
    await wait_until(lambda: len(slept) >= 3)
    assert calls == 3 and "boom" in (agent.last_error or "")
    await agent.stop()


def test_backoff() -> None:
    b = Backoff(initial_s=0.5, factor=3, cap_s=10)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.5, 4.5, 10, 10]
    b.reset()
    assert b.next_delay() == 0.5


@pytest.mark.parametrize("status", [400, 500])
async def test_refused_registration_is_logged(status: int) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(status)))
    agent = NodeAgent(
        client=client,
        registry_url=REG,
        node_id="n",
        registration=lambda: NodeRegistration(
            node_id="n", url="http://x:1", models=[HostedModel(id="m")]
        ),
        heartbeat=Heartbeat,
    )
    assert not await agent.register()
    assert str(status) in (agent.last_error or "")


async def test_a_refused_registration_logs_the_whole_error_message() -> None:
    """Found 2026-12-02: the node logged the body's first 200 characters, which cut the
    registry's 403 ``node_address_refused`` before its advice (what to run instead)."""
    advice = "; for a LAN or local tests run `llm-mesh registry serve --allow-private-nodes`"
    message = "node url http://127.0.0.1:8802 resolves to 127.0.0.1, loopback: " + "x" * 150
    body = {"error": {"message": message + advice, "type": "permission_error",
                      "param": "url", "code": "node_address_refused", "reason": "loopback"}}  # fmt: skip
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(403, json=body))
    )
    agent = NodeAgent(
        client=client,
        registry_url=REG,
        node_id="n",
        registration=lambda: NodeRegistration(
            node_id="n", url="http://x:1", models=[HostedModel(id="m")]
        ),
        heartbeat=Heartbeat,
    )
    assert not await agent.register()
    said = agent.last_error or ""
    assert said.startswith("registration refused: HTTP 403 node_address_refused: node url"), said
    assert said.endswith(advice) and '"type"' not in said


async def test_a_clock_far_off_the_registrys_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, HDR_SIGNATURE, NodeSigner

    seen: list[httpx.Request] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = {"node_id": "x", "heartbeat_interval_s": 5, "registry_time": 1000.0 + offset}
        return httpx.Response(200, json=answer)

    signer = NodeSigner(Ed25519PrivateKey.generate(), lambda: 1000.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(registry)) as client:
        agent = NodeAgent(
            client=client,
            registry_url=REG,
            node_id=signer.node_id,
            registration=lambda: NodeRegistration(
                node_id=signer.node_id, url="http://n:1", models=[HostedModel(id="m")]
            ),
            heartbeat=Heartbeat,
            signer=signer,
            operator_token="lmo_t",
        )
        for offset in (5.0, 90.0):
            caplog.clear()
            assert await agent.register()
            warned = any("clock is" in r.getMessage() for r in caplog.records)
            assert warned is (offset > 30)
    assert seen[0].headers[HDR_OPERATOR_TOKEN] == "lmo_t" and seen[0].headers[HDR_SIGNATURE]


async def test_a_dead_registry_is_left_for_the_next_at_once_and_the_node_stays_there() -> None:
    replicas = Replicas("r1.test", "r2.test")
    replicas.regs["r1.test"].down = True
    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test/"])
    assert agent.registry_urls == ["http://r1.test", "http://r2.test"]
    assert await agent.step() == 7.0 and agent.registered  # one step: r1 failed, r2 took it
    assert agent.registry_url == "http://r2.test" and agent.failovers == 1
    await agent.step()
    await agent.step()
    assert replicas.hits("r2.test") == [
        "POST /mesh/nodes", "POST /mesh/nodes/node-a/heartbeat",
        "POST /mesh/nodes/node-a/heartbeat",
    ]  # fmt: skip
    assert replicas.hits("r1.test") == ["POST /mesh/nodes"]  # tried once, not again
    # each try is signed anew: r2 never sees r1's sequence number again
    assert len({seq for _, seq in replicas.seqs}) == len(replicas.seqs)
    # r2 dies, r1 is back: the next heartbeat moves, no registration needed (shared store)
    replicas.regs["r1.test"].down = False
    replicas.regs["r2.test"].down = True
    await agent.step()
    assert agent.registry_url == "http://r1.test" and agent.registered
    assert replicas.hits("r1.test")[-1] == "POST /mesh/nodes/node-a/heartbeat"
    assert agent.heartbeats_sent == 3


async def test_a_5xx_moves_on_a_refusal_does_not() -> None:
    replicas = Replicas("r1.test", "r2.test")
    replicas.broken.add("r1.test")  # e.g. a proxy in front of a dead replica
    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"])
    assert await agent.step() == 7.0 and agent.registry_url == "http://r2.test"
    replicas.refuse.add("r2.test")
    await agent.step()  # 401: the network's answer, not a replica's failure
    assert agent.registry_url == "http://r2.test"
    assert agent.last_error is not None and "401" in agent.last_error


async def test_every_registry_down_backs_off_and_deregistration_tries_them_all() -> None:
    replicas = Replicas("r1.test", "r2.test")
    for r in replicas.regs.values():
        r.down = True
    agent = replica_agent(
        replicas, registry_url=["http://r1.test", "http://r2.test"],
        backoff=Backoff(initial_s=1, factor=2, cap_s=5),
    )  # fmt: skip
    assert await agent.step() == 1 and not agent.registered
    assert agent.last_error is not None and "r2.test" in agent.last_error
    replicas.regs["r2.test"].down = False
    assert await agent.step() == 7.0
    replicas.regs["r2.test"].down = True
    replicas.regs["r1.test"].down = False
    assert await agent.deregister()
    assert replicas.hits("r1.test")[-1] == "DELETE /mesh/nodes/node-a"


async def test_the_registrys_health_checks_are_logged_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The heartbeat answer's ``health``: a WARNING when the registry's checks turn to
    failing, an INFO when they pass again, each once; absent (an older registry) or
    malformed, nothing changes and nothing is logged."""
    reg = FakeRegistry()
    agent = make_agent(reg)
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.agent")
    await agent.step()

    async def beat(health: object) -> list[tuple[int, str]]:
        reg.health = health
        caplog.clear()
        assert await agent.step() == 7.0 and agent.registered and agent.last_error is None
        return [(r.levelno, r.getMessage()) for r in caplog.records]

    failing = {"ok": False, "since": 1_800_000_000.0, "checked_at": 1_800_000_000.0,
               "why": "no signed health proof (an older node?)"}  # fmt: skip
    assert await beat(None) == [] and agent.registry_health is None  # an older registry
    assert await beat({"ok": True, "since": 1.0, "checked_at": 2.0}) == []
    assert agent.registry_health is not None and agent.registry_health.ok
    logged = await beat(failing)
    assert len(logged) == 1 and logged[0][0] == logging.WARNING, logged
    assert "fails this node's health checks" in logged[0][1]
    assert "no signed health proof" in logged[0][1] and REG in logged[0][1]
    assert agent.registry_health is not None and not agent.registry_health.ok
    assert await beat({**failing, "checked_at": 1_800_000_300.0}) == []  # still failing
    assert await beat(None) == []  # another (older) registry said nothing: no news
    assert await beat({"ok": "yes"}) == [] and agent.registry_health is None  # not understood
    assert await beat(failing) == []  # failing as last told: said already
    logged = await beat({"ok": True, "since": 1_800_000_600.0, "checked_at": 1_800_000_600.0})
    assert len(logged) == 1 and logged[0][0] == logging.INFO, logged
    assert "pass" in logged[0][1]
    assert await beat({"ok": True, "since": 1_800_000_600.0, "checked_at": 1_800_000_900.0}) == []


class _BusyBeats(FakeRegistry):
    """Answers heartbeats 429 with ``Retry-After`` (limits44: past a node's bound)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/heartbeat"):
            self.calls.append((request.method, request.url.path, None))
            err = {"message": "too many", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
            return httpx.Response(429, json={"error": err}, headers={"retry-after": "3"})
        return super().__call__(request)


async def test_a_heartbeat_answered_429_waits_the_interval_and_does_not_register_again() -> None:
    """A 429 on a heartbeat is a failed heartbeat: still registered, the next one at the
    usual interval (past the registry's 3 s), no registration in a loop."""
    reg = _BusyBeats()
    agent = make_agent(reg)
    assert await agent.step() == 7.0
    for _ in range(3):
        assert await agent.step() == 7.0
        assert agent.registered and "429" in (agent.last_error or "")
    assert reg.paths() == ["POST /mesh/nodes"] + ["POST /mesh/nodes/node-a/heartbeat"] * 3
    assert agent.registrations == 1 and agent.heartbeats_sent == 0
