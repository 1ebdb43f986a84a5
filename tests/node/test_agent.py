"""Registration + heartbeat agent, against httpx.MockTransport (no sockets, no real time)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import NodeSigner
from LLM_Mesh.core.schemas import Heartbeat, HostedModel, NodeRegistration, NodeState
from LLM_Mesh.node.agent import Backoff, NodeAgent
from tests.node.conftest import wait_until

REG = "http://registry.test"


class FakeRegistry:
    """Records calls; ``down`` makes it unreachable; ``forget()`` drops the node."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, object] | None]] = []
        self.known: set[str] = set()
        self.down = False
        self.health: object = None  # the heartbeat answer's "health" (None: not said)

    def forget(self) -> None:
        self.known.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if request.method == "POST" and path == "/mesh/nodes":
            reg = NodeRegistration.model_validate(body)
            self.known.add(reg.node_id)
            return httpx.Response(200, json={"node_id": reg.node_id, "heartbeat_interval_s": 7.0})
        if request.method == "POST" and path.endswith("/heartbeat"):
            node_id = path.split("/")[3]
            Heartbeat.model_validate(body)
            if node_id not in self.known:
                err = {
                    "message": "unknown",
                    "type": "invalid_request_error",
                    "code": "unknown_node",
                }
                return httpx.Response(404, json={"error": err})
            said = {} if self.health is None else {"health": self.health}
            return httpx.Response(200, json={"ok": True, **said})
        if request.method == "DELETE":
            self.known.discard(path.split("/")[3])
            return httpx.Response(204)
        return httpx.Response(500)

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _ in self.calls]


def make_agent(
    registry: FakeRegistry, sleep: Callable[[float], object] | None = None, **kw: object
) -> NodeAgent:
    client = httpx.AsyncClient(transport=httpx.MockTransport(registry))

    def registration() -> NodeRegistration:
        return NodeRegistration(
            node_id="node-a", url="http://127.0.0.1:8801", models=[HostedModel(id="m")]
        )

    async def default_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    kw.setdefault("registry_url", REG)
    return NodeAgent(
        client=client,
        node_id="node-a",
        registration=registration,
        heartbeat=lambda: Heartbeat(in_flight=1, queued=2, state=NodeState.ONLINE),
        interval_s=10.0,
        sleep=sleep or default_sleep,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


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


class Replicas:
    """Registry replicas by host, sharing what they know (one store); each can be down,
    answer 5xx (``broken``), refuse (``refuse``: a 401 the whole network would give) or say
    the node is revoked (``revoke``: a 403 ``revoked``, that registry's decision)."""

    def __init__(self, *hosts: str) -> None:
        self.regs = {h: FakeRegistry() for h in hosts}
        shared: set[str] = set()
        for r in self.regs.values():
            r.known = shared
        self.broken: set[str] = set()
        self.refuse: set[str] = set()
        self.revoke: set[str] = set()
        self.seqs: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seqs.append((host, request.headers.get("X-Mesh-Seq", "")))
        if host in self.broken:
            return httpx.Response(502, text="bad gateway")
        if host in self.refuse:
            err = {"message": "bad signature", "type": "authentication_error",
                   "code": "invalid_signature"}  # fmt: skip
            return httpx.Response(401, json={"error": err})
        if host in self.revoke:
            err = {"message": "node node-a is revoked", "type": "permission_error",
                   "code": "revoked"}  # fmt: skip
            return httpx.Response(403, json={"error": err})
        return self.regs[host](request)

    def hits(self, host: str) -> list[str]:
        return self.regs[host].paths()


def replica_agent(replicas: Replicas, **kw: object) -> NodeAgent:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import NodeSigner

    clock = iter(range(1000, 10**6))
    agent = make_agent(
        FakeRegistry(), signer=NodeSigner(Ed25519PrivateKey.generate(), lambda: next(clock)), **kw
    )
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(replicas))
    return agent


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
