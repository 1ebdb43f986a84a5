"""The verifier is asked after the probed node has answered (tell (e), docs/security.md).

A reference not yet cached used to be asked just before its probe: a verifier whose
operator also runs the probed node (or who tells it) saw every new probe coming, prompt
and shape included, and the node answered that one request honestly. Now the node is
asked first and the reference after, the comparison once both are in.
"""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.canary_shape import CHAT_PATH, Shape
from tests.registry.canary_mesh import (
    MODEL,
    canned,
    honest,
    mesh,
    prober,
    prompt_of,
    register,
    trust,
)
from tests.registry.helpers import Harness, ManualClock

__all__ = ["mesh"]  # the fixture


class Collusion:
    """A verifier that passes on each prompt it is asked to the node its operator also
    runs; the node answers a prompt it was warned of honestly, any other with canned
    text. Each arrival is noted with the gateway's (injected) clock, and the node takes
    ``node_s`` seconds to answer."""

    def __init__(self, clock: ManualClock, node_s: float = 5.0) -> None:
        self.clock = clock
        self.node_s = node_s
        self.warned: set[str] = set()
        self.arrivals: list[tuple[str, float]] = []

    def verifier(self, body: dict[str, Any]) -> dict[str, Any]:
        self.arrivals.append(("verifier", self.clock()))
        self.warned.add(prompt_of(body))
        return honest(body)

    def node(self, body: dict[str, Any]) -> dict[str, Any]:
        self.arrivals.append(("node", self.clock()))
        self.clock.advance(self.node_s)
        return honest(body) if prompt_of(body) in self.warned else canned(body)


@pytest.mark.parametrize(
    "shape",
    [Shape(), Shape(path=CHAT_PATH), Shape(stream=True), Shape(path=CHAT_PATH, stream=True)],
    ids=["completion", "chat", "completion-stream", "chat-stream"],
)
async def test_a_verifier_learns_of_a_new_probe_only_after_the_node_answered(
    mesh: Harness, shape: Shape
) -> None:
    c = Collusion(mesh.clock)
    await register(mesh, "verifier", c.verifier)
    await register(mesh, "node-a", c.node)
    await trust(mesh, "verifier")
    result = await prober(mesh).probe("node-a", MODEL, "def f():", shape)
    assert [who for who, _ in c.arrivals] == ["node", "verifier"]
    (_, node_at), (_, verifier_at) = c.arrivals
    assert verifier_at >= node_at + c.node_s  # asked once the node's answer was in
    assert result.verdict == "fail" and result.quarantined, result  # the warning came late


async def test_a_cached_reference_asks_no_verifier_and_an_honest_node_passes(
    mesh: Harness,
) -> None:
    c = Collusion(mesh.clock)
    await register(mesh, "verifier", c.verifier)
    await register(mesh, "node-a", honest)
    await register(mesh, "node-b", honest)
    await trust(mesh, "verifier")
    p = prober(mesh)
    assert (await p.probe("node-a", MODEL, "def f():", Shape())).verdict == "pass"
    assert (await p.probe("node-b", MODEL, "def f():", Shape())).verdict == "pass"
    assert [who for who, _ in c.arrivals] == ["verifier"]  # the second from the cache


async def test_a_verifier_that_fails_after_the_probe_gives_no_verdict(mesh: Harness) -> None:
    """The node was asked (and paid, as for any request); without a reference nothing is
    judged: ``error``, naming the verifier, and the node is not flagged."""
    node = await register(mesh, "node-a", canned)
    await register(mesh, "verifier", lambda body: {"choices": [{"index": 0, "text": "x",
                                                                 "logprobs": None}]})  # fmt: skip
    await trust(mesh, "verifier")
    result = await prober(mesh).probe("node-a", MODEL, "def f():", Shape())
    assert result.verdict == "error" and result.detail.startswith("verifier:"), result
    assert len(node.calls) == 1 and not result.quarantined
