"""The router's plain data: attempt outcomes, verdicts, decisions, the open attempt.

Kept apart from :mod:`LLM_Mesh.core.balancer` (which re-exports them) so the
router module stays one concept.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import NamedTuple

__all__ = ["BUSY", "HARD_FAILURES", "Attempt", "Decision", "Outcome", "Verdict"]


class Outcome(str, Enum):
    SUCCESS = "success"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"  # 5xx, or the connection dropped mid-answer
    OVERLOADED = "overloaded"  # 429: the node's queue is full; not a health failure
    UNAVAILABLE = "unavailable"  # 503: paused, draining, no memory; not a health failure
    CANCELLED = "cancelled"  # the client went away; says nothing about the node
    # a 4xx the node decided (400, 404, 413, 422...): says nothing about the node until
    # another node's answer says whether the request was bad (core/failover.py)
    REJECTED = "rejected"


HARD_FAILURES = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.SERVER_ERROR})
# the node said it cannot take the request now: full until its next heartbeat says otherwise
BUSY = frozenset({Outcome.OVERLOADED, Outcome.UNAVAILABLE})


class Verdict(str, Enum):
    OK = "ok"
    SATURATED = "saturated"
    NO_NODE = "no_node"


class Decision(NamedTuple):
    """The router's answer. A named tuple, not a frozen dataclass: one is made per pick, and
    a frozen dataclass's ``__init__`` (five ``object.__setattr__`` calls) was a tenth of
    the pick's bytecode (docs/benchmarks.md, "Routing pick")."""

    verdict: Verdict
    node_id: str | None = None
    model: str | None = None
    cost_ms: float = math.inf
    # SATURATED: the estimated wait; NO_NODE: the soonest end of a 503's hold, if any
    wait_s: float | None = None


class Attempt:
    """One try of one request on one node, held by the gateway between begin and finish."""

    __slots__ = ("done", "first_token_at", "keyed", "lineage", "model", "node_id", "started")

    def __init__(self, node_id: str, model: str, started: float, keyed: bool = False) -> None:
        self.node_id = node_id
        self.model = model
        self.started = started
        self.first_token_at: float | None = None
        self.done = False
        self.keyed = keyed  # a keyed request: its 429 closes the node to everyone
        # the registration it was counted on (the router's token): an attempt begun on
        # a node since removed, or while it was unknown, never touches a later one's counts
        self.lineage: object | None = None
