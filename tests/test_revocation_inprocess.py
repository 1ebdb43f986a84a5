"""A forged 403 ``revoked`` does not silence a node; the registry's own revocation does.

Through the real mesh in process (``tests/inprocess_mesh.py``: the real registry, a real
node with its real agent and gateway guard). Found 2026-12-05: anything that answered at
the registry's URL (a man in the middle on plain http, a load balancer's error page, a
hijacked name) could answer one heartbeat 403 ``revoked`` and the node stopped
heartbeating there, asking again only after 1, 2, 4, 8, 15 min. Now the registry signs
its revocation answer with its registry key, over the node's own request
(``core/revocation_proof.py``), and a node that holds the registry's key honours only a
revocation that verifies with it (docs/security.md, "Revocation")."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh, SimNode

MODEL = "gemma-3-270m"
LOGGER = "LLM_Mesh.node.agent"


class Forger:
    """Answers for the registry's URL: every request 403 ``revoked`` (as the registry
    words it), or, with :attr:`replay`, the registry's own earlier answer, as it was."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.paths: list[str] = []
        self.replay: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.paths.append(f"{scope['method']} {scope['path']}")
        error = {"message": f"node {self.node_id} is revoked", "type": "permission_error",
                 "param": None, "code": "revoked"}  # fmt: skip
        body = self.replay or json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _wake_until(mesh: InProcessMesh, node: SimNode, holds: Callable[[], bool]) -> bool:
    """Wake the node's agent (its next heartbeat now) until ``holds()``, for at most 5 s;
    whether it held."""
    agent = node.service.agent
    assert agent is not None

    async def wake() -> bool:
        for _ in range(5000):
            if holds():
                return True
            agent.wake()
            await asyncio.sleep(0.001)
        return holds()

    return bool(mesh.call(wake()))


def _forged(mesh: InProcessMesh, node: SimNode, replay: bytes | None = None) -> Forger:
    """A forger at the registry's URL, until it has answered three heartbeats (or 5 s)."""
    forger = Forger(node.node_id)
    forger.replay = replay
    mesh.router.mount(REGISTRY_URL, forger)  # type: ignore[arg-type]
    _wake_until(mesh, node, lambda: sum(p.endswith("/heartbeat") for p in forger.paths) >= 3)
    return forger


def test_a_forged_revoked_403_does_not_stop_the_heartbeats(
    inprocess_mesh: InProcessMesh, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    node = inprocess_mesh.add_node(MODEL)
    agent = node.service.agent
    assert agent is not None and node.service.gateway.verifier is not None  # the key pinned
    forger = _forged(inprocess_mesh, node)
    beats = [p for p in forger.paths if p.endswith("/heartbeat")]
    assert len(beats) >= 3, forger.paths  # heartbeats go on
    assert REGISTRY_URL not in agent.revoked and agent.registered
    warned = [r for r in caplog.records if r.name == LOGGER and "not signed" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert REGISTRY_URL in warned[0].getMessage()
    assert not [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]


def test_the_registrys_revocation_is_honoured_and_its_replay_is_not(
    inprocess_mesh: InProcessMesh, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    node = inprocess_mesh.add_node(MODEL)
    agent = node.service.agent
    assert agent is not None
    real: list[bytes] = []
    registry_app = inprocess_mesh.app

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def keep(message: Any) -> None:
            if message["type"] == "http.response.body" and b'"revoked"' in message["body"]:
                real.append(message["body"])
            await send(message)

        await registry_app(scope, receive, keep)  # type: ignore[misc]

    inprocess_mesh.router.mount(REGISTRY_URL, recording)  # type: ignore[arg-type]
    when = datetime.now(timezone.utc)
    assert inprocess_mesh.call(inprocess_mesh.store.revoke_node(node.node_id, when))
    assert _wake_until(inprocess_mesh, node, lambda: REGISTRY_URL in agent.revoked)
    assert real and b'"revocation"' in real[0]  # signed by the registry's key
    errors = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 40]
    assert len(errors) == 1 and f"the registry at {REGISTRY_URL} revoked this node" in errors[0]

    # its answer replayed to the node's later messages (another sequence number): refused
    agent.revoked.lifted(REGISTRY_URL)
    agent.registered = True
    forger = _forged(inprocess_mesh, node, replay=real[0])
    assert len([p for p in forger.paths if p.endswith("/heartbeat")]) >= 3, forger.paths
    assert REGISTRY_URL not in agent.revoked


def test_a_rotated_registrys_revocation_stops_a_node_that_pinned_the_old_key(
    inprocess_mesh: InProcessMesh, caplog: Any
) -> None:
    """Found 2026-12-05: after a rotation of ``registry.key`` the registry's real
    revocation was signed by the new key, and a node that had pinned the old one (and, being
    revoked, never got the registration answer that moves its pin) ignored it: it
    heartbeated on at its usual pace forever. Now the 403 carries the registry's chain of
    rotation statements and the node follows it from its pin (``core/revocation_proof.py``)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    node = inprocess_mesh.add_node(MODEL)
    agent, guard = node.service.agent, node.service.gateway
    assert agent is not None and guard.verifier is not None
    pinned = guard.verifier.public_key  # learned at registration (trust on first use)
    when = datetime.now(timezone.utc)
    assert inprocess_mesh.call(inprocess_mesh.store.revoke_node(node.node_id, when))
    inprocess_mesh.rotate_registry_key()  # before the node's next message: it never hears it
    assert _wake_until(inprocess_mesh, node, lambda: REGISTRY_URL in agent.revoked)
    assert not agent.registered
    errors = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 40]
    assert len(errors) == 1 and f"the registry at {REGISTRY_URL} revoked this node" in errors[0]
    assert not [r for r in caplog.records if r.name == LOGGER and "not signed" in r.getMessage()]
    assert guard.verifier.public_key == pinned  # stopped, its pin not moved by a revocation
