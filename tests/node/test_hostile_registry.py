"""A hostile registry (or whoever answers at the registry URL a node was given: plain http
on a LAN) against the node's agent: its answers to the registration, the heartbeats, the
goodbye and the earnings question. httpx.MockTransport, no sockets; real time only where a
drip is timed (at most a few seconds)."""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import NodeSigner
from LLM_Mesh.core.schemas import Heartbeat, HostedModel, NodeRegistration
from LLM_Mesh.errors import MeshError
from LLM_Mesh.node.agent import MAX_ANSWER_BYTES, NodeAgent
from LLM_Mesh.node.gateway_guard import GatewayGuard

REG = "http://registry.test"
BIG = 64 << 20
#: a call's bound in these tests: its deadline is 0.5 s (the agent's ``request_timeout_s``),
#: a drip without one runs 20 s; the margin is the load's (found 2026-12-06, flaky37: at
#: load 13 on 2 cores, 64 MiB read under tracemalloc took 3.6 s and 5.0 s against bounds of
#: 2.0 and 2.5 s, 2 failures in 6 runs)
BOUND_S = 10.0
#: each call's own wait: past the bound, short of the drip's 20 s (a call that waits the drip
#: out fails here)
WAIT_S = 15.0


async def _drip() -> AsyncIterator[bytes]:
    """A byte every 50 ms for up to 20 s: each read well inside any per-read timeout."""
    for _ in range(400):
        await asyncio.sleep(0.05)
        yield b" "


async def _endless(total: int = BIG) -> AsyncIterator[bytes]:
    """``total`` bytes as fast as they are read (a JSON-ish prefix, then spaces)."""
    yield b'{"heartbeat_interval_s": 5, "pad": "'
    piece = b"x" * (1 << 16)
    for _ in range(total // len(piece)):
        yield piece
    yield b'"}'


@functools.cache
def _bomb() -> bytes:
    """64 MiB of JSON in about 64 KiB of gzip (made once)."""
    return gzip.compress(b'{"heartbeat_interval_s": 5, "pad": "' + b" " * BIG + b'"}', 9)


async def _sent(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a server sends it (not read at once, as ``content=bytes`` would be)."""
    for i in range(0, len(data), 1 << 14):
        yield data[i : i + (1 << 14)]


ANSWERS: dict[str, Callable[[], httpx.Response]] = {
    "64 MiB": lambda: httpx.Response(200, content=_endless()),
    "gzip bomb": lambda: httpx.Response(
        200, content=_sent(_bomb()), headers={"Content-Encoding": "gzip"}
    ),
    "drip": lambda: httpx.Response(200, content=_drip()),
}


def _agent(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> NodeAgent:
    return NodeAgent(
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        registry_url=REG,
        node_id="node-a",
        registration=lambda: NodeRegistration(
            node_id="node-a", url="http://127.0.0.1:8801", models=[HostedModel(id="m")]
        ),
        heartbeat=Heartbeat,
        request_timeout_s=0.5,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_an_endless_bombing_or_dripping_registration_answer_is_a_failed_call(
    kind: str,
) -> None:
    """Found 2026-12-03: the answer was read whole (64 MiB, or a gzip bomb inflated whole)
    and the registration accepted; a drip held the agent for ever (the timeout is per read)."""
    _bomb()
    agent = _agent(lambda r: ANSWERS[kind]())
    tracemalloc.start()
    started = time.monotonic()
    try:
        accepted = await asyncio.wait_for(agent.register(), WAIT_S)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not accepted and not agent.registered
    assert time.monotonic() - started < BOUND_S
    assert peak < 8 * MAX_ANSWER_BYTES, peak
    # a drip runs past the deadline: it timed out, it was not refused (found 2026-12-04:
    # "...'s answer refused: ... took longer than 0.5 s")
    how = "answer timed out" if kind == "drip" else "answer refused"
    assert how in (agent.last_error or ""), agent.last_error


@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_a_heartbeat_or_earnings_answer_is_bounded_too(kind: str) -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/mesh/nodes":
            return httpx.Response(200, json={"node_id": "node-a", "heartbeat_interval_s": 5})
        return ANSWERS[kind]()

    _bomb()
    agent = _agent(registry, operator_token="lmo_t")
    assert await agent.register()
    started = time.monotonic()
    assert not await asyncio.wait_for(agent.send_heartbeat(), WAIT_S)
    how = "answer timed out" if kind == "drip" else "answer was refused"
    assert how.replace(" was", "") in (agent.last_error or ""), agent.last_error
    with pytest.raises(MeshError, match=how):
        await asyncio.wait_for(agent.earnings(), WAIT_S)
    assert time.monotonic() - started < BOUND_S


async def test_a_dripping_goodbye_ends_at_its_deadline() -> None:
    """Found 2026-12-03: each try waited as long as the registry kept dripping, past the
    shutdown's deadline (the node's stop hung on it)."""

    def registry(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"node_id": "node-a", "heartbeat_interval_s": 5})
        return httpx.Response(204, content=_drip())

    # each try's own bound 5 s: the goodbye's deadline (1 s) is what ends it, well before
    agent = _agent(registry, deregister_timeout_s=5.0)
    assert await agent.register()
    started = time.monotonic()
    assert not await asyncio.wait_for(agent.deregister(deadline=started + 1.0), WAIT_S)
    assert time.monotonic() - started < 4.0


@pytest.mark.parametrize(
    ("told", "kept"),
    [(1e-9, 1.0), (0.001, 1.0), (10**12, 3600.0), ("Infinity", 10.0), (7, 7.0)],
)
async def test_the_heartbeat_interval_a_registry_sets_is_bounded(told: object, kept: float) -> None:
    """Found 2026-12-03: any positive number was taken: 1e-9 made the node sign and send
    heartbeats as fast as the registry answered them."""
    body = '{"node_id": "node-a", "heartbeat_interval_s": ' + str(told) + "}"
    agent = _agent(lambda r: httpx.Response(200, content=body.encode()), interval_s=10.0)
    assert await agent.register()
    assert agent.interval_s == kept


DEEP = b"[" * 200_000 + b"]" * 200_000
ODD_ANSWERS = [
    b"[1, 2]",
    b'"a string"',
    b"null",
    DEEP,
    b'{"heartbeat_interval_s": [1], "heartbeat_expiry_s": {"a": 1}, "registry_time": "x"}',
    b'{"heartbeat_interval_s": 1' + b"0" * 400 + b', "registry_time": 1' + b"0" * 400 + b"}",
    b'{"heartbeat_expiry_s": 1' + b"0" * 400 + b', "registry_time": -1e400}',
    b'{"registry_public_key": 5, "gateway_kx_key": [1], "gateway_kx_signature": {}}',
    b'{"registry_public_key": "ed25519:\\n\\u001b[2J", "gateway_kx_key": "x"}',
    b'{"health": {"ok": "yes", "since": "x", "why": [1]}}',
    b'{"health": ' + DEEP + b"}",
]


@pytest.mark.parametrize("body", ODD_ANSWERS, ids=range(len(ODD_ANSWERS)))
async def test_answers_of_the_wrong_shape_change_nothing_and_raise_nothing(body: bytes) -> None:
    """Found 2026-12-03: an answer nested deeper than the JSON parser's recursion limit
    (400 KB) raised RecursionError out of the registration and out of every heartbeat."""
    guard = GatewayGuard("node-a", registering=True, wall_clock=time.time)
    signer = NodeSigner(Ed25519PrivateKey.generate(), time.time)  # (its clock is checked)
    agent = _agent(
        lambda r: httpx.Response(200, content=body), on_accepted=guard.pin, signer=signer
    )
    assert await agent.register()
    assert agent.interval_s == 10.0 and agent.heartbeat_expiry_s is None
    assert guard.verifier is None  # no key pinned from an answer that carries none usable
    assert await agent.send_heartbeat()
    assert agent.registry_health is None


FORGED = "refused\n2026-12-03 10:00:00,000 INFO LLM_Mesh.node.agent: registered\x1b[2J\x1b]0;x\x07"


def _no_forged_lines(records: list[logging.LogRecord]) -> None:
    said = [r.getMessage() for r in records]
    assert said, "nothing was logged"
    for text in said:
        assert not any(not c.isprintable() for c in text), repr(text)


async def test_a_registrys_words_cannot_forge_log_lines_or_reach_the_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-03: a refusal's message (or a heartbeat refusal's body) went to the
    operator's log as sent: newlines forged log lines, ANSI escapes cleared the terminal
    that shows it (and ``node info`` printed it again as ``last_error``)."""
    caplog.set_level(logging.INFO)
    error = {"error": {"message": FORGED, "type": "x", "code": "c\n\x1b[31m"}}
    agent = _agent(lambda r: httpx.Response(403, json=error))
    assert not await agent.register()
    assert "\n" not in (agent.last_error or "") and "\x1b" not in (agent.last_error or "")

    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/mesh/nodes":
            return httpx.Response(200, json={"node_id": "node-a"})
        return httpx.Response(400, content=FORGED.encode())

    agent = _agent(registry)
    assert await agent.register()
    assert not await agent.send_heartbeat()
    assert "\n" not in (agent.last_error or "") and "\x1b" not in (agent.last_error or "")
    _no_forged_lines(caplog.records)


async def test_a_gateway_key_the_configuration_does_not_pin_is_logged_printable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import encode_public_key, public_key_of

    pinned = encode_public_key(public_key_of(Ed25519PrivateKey.generate()))
    guard = GatewayGuard("node-a", registering=True, wall_clock=time.time, configured_key=pinned)
    guard.pin({"registry_public_key": FORGED})
    assert guard.verifier is not None and guard.verifier.public_key == pinned
    _no_forged_lines(caplog.records)


# -- what `llm-mesh node info` and `node plan` read of the registry's public listings ----------


@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_node_info_and_plan_read_a_bounded_listing_in_bounded_time(kind: str) -> None:
    """Found 2026-12-03: ``GET /mesh/nodes`` and ``/mesh/demand`` were read whole (a gzip
    bomb inflated whole) and a drip held ``node info`` / ``node plan`` for ever."""
    from LLM_Mesh.node.control import fetch_demand, registry_quality

    _bomb()
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: ANSWERS[kind]())) as c:
        started = time.monotonic()
        tracemalloc.start()
        try:
            quality = await asyncio.wait_for(
                registry_quality(c, REG, "node-a", deadline_s=0.5), WAIT_S
            )
            demand, why = await asyncio.wait_for(fetch_demand(c, REG, deadline_s=0.5), WAIT_S)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert quality is None and demand is None and why.startswith("no demand data")
    assert time.monotonic() - started < BOUND_S
    assert peak < 48 << 20, peak  # 64 MiB sent (or inflated): at most 32 MiB read


async def test_a_demand_answer_of_infinite_numbers_is_skipped_not_raised() -> None:
    from LLM_Mesh.node.control import fetch_demand

    body = b'{"models": [{"model": "m", "requests_waiting": Infinity}, {"model": "n"}]}'
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    ) as c:
        demand, _why = await fetch_demand(c, REG)
    assert demand is not None and set(demand) == {"n"}


async def test_node_info_and_plan_follow_no_redirect_of_the_registry() -> None:
    """Found 2026-12-03: the CLI's client follows redirects (for model downloads), so a
    registry's 302 sent ``node info`` / ``node plan`` to any address of the operator's LAN."""
    from LLM_Mesh.node.control import fetch_demand, registry_quality

    asked: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://192.168.1.1/cgi-bin/reboot"})

    transport = httpx.MockTransport(registry)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as c:
        assert await registry_quality(c, REG, "node-a") is None
        demand, _why = await fetch_demand(c, REG)
    assert demand is None
    assert not [u for u in asked if "192.168" in u], asked
