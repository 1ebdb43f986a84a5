"""A registry that revoked the node (403 ``revoked``): one ERROR, no heartbeats to it, a
re-check after 1, 2, 4, 8, 15, 15 ... min; other registries asked at once; goodbye only to
those that did not revoke it. MockTransport and an injected clock: no sockets, no waiting."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from LLM_Mesh.node.agent import NodeAgent
from tests.node.fake_registry import REG, FakeRegistry, Replicas, make_agent, replica_agent

LOGGER = "LLM_Mesh.node.agent"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Revoking(FakeRegistry):
    """A registry whose admin can revoke the node (``revoked``: 403 to all it sends)."""

    def __init__(self) -> None:
        super().__init__()
        self.revoked = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.revoked:
            return super().__call__(request)
        self.calls.append((request.method, request.url.path, None))
        err = {"message": "node node-a is revoked", "type": "permission_error", "code": "revoked"}
        return httpx.Response(403, json={"error": err})


def _logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


async def test_one_error_no_heartbeats_and_rechecks_at_doubling_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg, clock = Revoking(), Clock()
    agent = make_agent(reg, clock=clock)
    assert await agent.step() == 7.0 and agent.registered
    reg.revoked = True
    caplog.clear()
    assert await agent.step() == 60.0  # the heartbeat's 403: the first re-check in a minute
    assert not agent.registered and reg.paths()[-1] == "POST /mesh/nodes/node-a/heartbeat"
    errors = [r for r in _logged(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in _logged(caplog)]
    said = errors[0].getMessage()
    assert said.startswith(f"the registry at {REG} revoked this node (node-a)"), said
    assert "new identity" in said and "HTTP 403" not in said and errors[0].exc_info is None
    assert "revoked" in (agent.last_error or "")

    sent = len(reg.calls)
    schedule = []
    for _ in range(7):  # every wake-up in between sends nothing
        due = clock.now + (await agent.step())
        while clock.now + 10 < due:
            clock.now += 10
            agent.wake()  # the node's state changed: still nothing to a registry that revoked
            assert await agent.step() == pytest.approx(due - clock.now)
            assert len(reg.calls) == sent
        clock.now = due
        schedule.append(due)
        before = len(reg.calls)
        if len(schedule) == 6:
            reg.revoked = False  # the admin undid it
        delay = await agent.step()
        assert reg.paths()[before:][:1] == ["POST /mesh/nodes"]  # one registration, no more
        sent = len(reg.calls)
        if agent.registered:
            assert delay == 7.0
            break
    gaps = [b - a for a, b in zip([1060.0, *schedule], schedule, strict=False)]
    assert schedule[0] == 1060.0 and gaps[1:] == [120, 240, 480, 900, 900], schedule
    assert agent.registered and REG not in agent.revoked
    await agent.step()
    assert reg.paths()[-1] == "POST /mesh/nodes/node-a/heartbeat"  # heartbeats resume
    messages = [r.getMessage() for r in _logged(caplog)]
    assert sum(r.levelno == logging.ERROR for r in _logged(caplog)) == 1, messages
    assert not any("HTTP 403" in m for m in messages), messages
    assert f"the registry at {REG} accepts this node again" in messages


async def test_other_registries_are_asked_at_once_and_get_the_goodbye() -> None:
    replicas = Replicas("r1.test", "r2.test")
    clock = Clock()
    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"], clock=clock)
    assert await agent.step() == 7.0 and agent.registry_url == "http://r1.test"
    replicas.revoke.add("r1.test")
    assert await agent.step() == 7.0  # refused at r1, registered at r2 in the same step
    assert agent.registered and agent.registry_url == "http://r2.test"
    assert replicas.hits("r2.test") == ["POST /mesh/nodes"]
    r1_calls = len([h for h, _ in replicas.seqs if h == "r1.test"])
    for _ in range(5):
        clock.now += 10
        await agent.step()
    assert replicas.hits("r2.test")[1:] == ["POST /mesh/nodes/node-a/heartbeat"] * 5
    assert len([h for h, _ in replicas.seqs if h == "r1.test"]) == r1_calls  # nothing to r1
    clock.now += 15  # a minute after r1's answer: one registration there, the rest to r2
    await agent.step()
    r1 = [h for h, _ in replicas.seqs if h == "r1.test"]
    assert len(r1) == r1_calls + 1 and agent.registry_url == "http://r2.test"
    assert replicas.hits("r2.test")[-1] == "POST /mesh/nodes/node-a/heartbeat"
    await agent.stop(deregister=True)
    assert replicas.hits("r2.test")[-1] == "DELETE /mesh/nodes/node-a"  # the goodbye
    assert len([h for h, _ in replicas.seqs if h == "r1.test"]) == r1_calls + 1


async def test_every_registry_revoked_no_goodbye_and_an_independent_schedule_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    replicas = Replicas("r1.test", "r2.test")
    clock = Clock()
    agent: NodeAgent = replica_agent(
        replicas, registry_url=["http://r1.test", "http://r2.test"], clock=clock
    )
    await agent.step()
    replicas.revoke.add("r1.test")
    replicas.revoke.add("r2.test")
    assert await agent.step() == 60.0  # r1's heartbeat and r2's registration: both revoked
    errors = [r.getMessage() for r in _logged(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "http://r1.test" in errors[0] and "http://r2.test" in errors[1]
    assert "heartbeats now go to http://r2.test only" in errors[0]
    assert "registered with no registry" in errors[1]
    replicas.revoke.discard("r2.test")  # only r2's admin undoes it
    clock.now += 60
    assert await agent.step() == 7.0
    assert agent.registered and agent.registry_url == "http://r2.test"
    assert "http://r1.test" in agent.revoked and "http://r2.test" not in agent.revoked
    r1 = agent.revoked.get("http://r1.test")
    assert r1 is not None and r1.next_check == clock.now + 120  # r1's next check doubled
    replicas.revoke.add("r2.test")
    await agent.step()
    seqs = len(replicas.seqs)
    await agent.stop(deregister=True)
    assert len(replicas.seqs) == seqs  # no goodbye: every registry revoked the node
    assert "not registered with a registry (every registry revoked it)" in caplog.text


async def test_a_revoking_registrys_health_checks_are_forgotten() -> None:
    """Found 2026-12-04 (review): the health the revoking registry said last was kept, so
    ``/mesh/info`` (``llm-mesh node info``) showed "passing" beside "revoked by"."""
    reg, clock = Revoking(), Clock()
    reg.health = {"ok": True, "since": 1.0, "checked_at": 2.0}
    agent = make_agent(reg, clock=clock)
    await agent.step()
    await agent.step()
    assert agent.registry_health is not None and agent.registry_health.ok
    reg.revoked = True
    await agent.step()
    assert REG in agent.revoked and agent.registry_health is None


async def test_a_recheck_under_way_at_shutdown_is_dropped_and_the_goodbye_goes_elsewhere() -> None:
    """A re-check of a registry that revoked the node, hanging when the node stops: the
    loop is cancelled with it (its answer, had it come, is not taken), and the goodbye goes
    to the registry the node heartbeats to, the revoking one still left out."""
    replicas = Replicas("r1.test", "r2.test")
    clock = Clock()
    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"], clock=clock)
    await agent.step()
    replicas.revoke.add("r1.test")
    await agent.step()
    under_way, never = asyncio.Event(), asyncio.Event()

    async def hanging_r1(request: httpx.Request) -> httpx.Response:
        if request.url.host == "r1.test":
            replicas.revoke.discard("r1.test")  # r1 would accept it now
            under_way.set()
            await never.wait()
        return replicas(request)

    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(hanging_r1))
    clock.now += 61
    agent.start()
    await asyncio.wait_for(under_way.wait(), 5)
    await agent.stop(deregister=True)
    assert replicas.hits("r2.test")[-1] == "DELETE /mesh/nodes/node-a"
    assert "http://r1.test" in agent.revoked and not agent.registered


async def test_a_second_revocation_after_a_lift_starts_the_schedule_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Accepted at a re-check, revoked again later: news again (a second ERROR), the first
    re-check a minute later, not the doubled wait the first revocation had reached."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg, clock = Revoking(), Clock()
    agent = make_agent(reg, clock=clock)
    await agent.step()
    reg.revoked = True
    assert await agent.step() == 60.0
    for _ in range(3):  # re-checks at +60, +120, +240: refused, the waits doubling
        clock.now += await agent.step()
        await agent.step()
    revocation = agent.revoked.get(REG)
    assert revocation is not None and revocation.checks == 3
    reg.revoked = False
    clock.now = revocation.next_check
    assert await agent.step() == 7.0 and agent.registered and REG not in agent.revoked
    reg.revoked = True
    clock.now += 7
    assert await agent.step() == 60.0  # the heartbeat's 403: one minute, as the first time
    again = agent.revoked.get(REG)
    assert again is not None and (again.checks, again.since) == (0, clock.now)
    assert sum(r.levelno == logging.ERROR for r in _logged(caplog)) == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"error": {"message": "key of another operator", "type": "permission_error",
                   "code": "forbidden", "reason": "node_key_other_operator"}},
        {"error": {"message": "acting on another node", "code": "node_id_mismatch"}},
        {"detail": "revoked"},  # not the OpenAI shape: a proxy, an older server
    ],
    ids=["other-operator", "mismatch", "other-shape"],
)  # fmt: skip
async def test_another_403_is_treated_as_before(answer: dict[str, object]) -> None:
    """A 403 that does not say ``revoked`` (an older registry, another refusal): the
    registration is retried after the backoff and not at the other registry, a heartbeat
    refusal keeps the node registered and heartbeating there; nothing marked revoked."""
    replicas = Replicas("r1.test", "r2.test")
    refusing = {"on": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if refusing["on"] and request.url.host == "r1.test":
            replicas.seqs.append(("r1.test", "403"))
            return httpx.Response(403, json=answer)
        return replicas(request)

    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"])
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await agent.step()
    refusing["on"] = True
    assert await agent.step() == 7.0  # the heartbeat refused: still registered, same place
    assert agent.registered and agent.registry_url == "http://r1.test"
    assert "HTTP 403" in (agent.last_error or "")
    agent.registered = False  # (as after a 404 unknown_node)
    assert await agent.step() == 1.0  # the registration refused: the backoff's first wait
    assert not agent.registered and agent.registry_url == "http://r1.test"
    assert replicas.hits("r2.test") == [] and len(agent.revoked) == 0
    assert agent.revoked.among(agent.registry_urls) == []


class OperatorRevoked(FakeRegistry):
    """``registry operators revoke``: each of its nodes' keys revoked, so a heartbeat hears
    the node's words and a registration the operator's (``registry/node_auth.py``)."""

    def __init__(self) -> None:
        super().__init__()
        self.revoked = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.revoked:
            return super().__call__(request)
        self.calls.append((request.method, request.url.path, None))
        heartbeat = request.url.path.endswith("/heartbeat")
        said = "node node-a is revoked" if heartbeat else "operator acme is revoked"
        return httpx.Response(403, json={"error": {"message": said, "code": "revoked"}})


async def test_an_operators_revocation_is_told_when_the_recheck_hears_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-04 (review): the heartbeat's "node node-a is revoked" made the one
    ERROR (a new identity), and the re-check's "operator acme is revoked" was not told: a
    new identity under the revoked operator's token is refused too."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg, clock = OperatorRevoked(), Clock()
    agent = make_agent(reg, clock=clock)
    await agent.step()
    reg.revoked = True
    clock.now += await agent.step()  # the heartbeat's 403: the node's words
    assert await agent.step() == 120.0  # the re-check's registration: the operator's
    errors = [r.getMessage() for r in _logged(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "revoked this node (node-a)" in errors[0], errors
    assert "this node's operator (operator acme is revoked)" in errors[1], errors
    assert "new operator token" in errors[1]
    clock.now += 120
    await agent.step()
    assert sum(r.levelno == logging.ERROR for r in _logged(caplog)) == 2  # not again


async def test_a_recheck_accepted_elsewhere_does_not_set_the_heartbeat_interval() -> None:
    """Found 2026-12-04 (review): a re-check accepted by a registry the node does not
    heartbeat to (it heartbeats to another) set the interval and expiry from that answer, so
    a replica configured otherwise, or a hostile URL that had answered "revoked", made the
    node heartbeat its registry once an hour (3600 s) and expire there."""
    replicas = Replicas("r1.test", "r2.test")
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        r = replicas(request)
        registration = request.method == "POST" and request.url.path == "/mesh/nodes"
        if request.url.host == "r1.test" and r.status_code == 200 and registration:
            answer = {**r.json(), "heartbeat_interval_s": 3600, "heartbeat_expiry_s": 9999}
            return httpx.Response(200, json=answer)
        return r

    agent = replica_agent(replicas, registry_url=["http://r1.test", "http://r2.test"], clock=clock)
    agent._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    replicas.revoke.add("r1.test")
    assert await agent.step() == 7.0  # r1: revoked; r2 registered the node
    assert agent.registry_url == "http://r2.test" and agent.expiry_s == 21.0
    replicas.revoke.discard("r1.test")
    clock.now += 60
    assert await agent.step() == 7.0  # r1's re-check accepted; heartbeats stay with r2
    assert "http://r1.test" not in agent.revoked and agent.registry_url == "http://r2.test"
    assert (agent.interval_s, agent.expiry_s) == (7.0, 21.0)
    assert replicas.hits("r2.test")[-1] == "POST /mesh/nodes/node-a/heartbeat"
