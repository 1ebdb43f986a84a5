"""When a client with several gateway URLs takes the one it waits on for hung.

Pure code, no I/O, time passed in (the event loop's clock). The I/O is
:mod:`LLM_Mesh.client_hang`'s; :class:`~LLM_Mesh.client.MeshClient` uses it.

A gateway replica that is *hung* (SIGSTOPped, or its event loop blocked for good) still
has its connections accepted by the kernel, into the listen backlog: the request goes out
and nothing ever comes back, until the read timeout (300 s). A gateway that is only slow
(a non-streamed completion of many tokens, a cold model loading before a stream's head)
is waiting just the same, so the wait alone says nothing. A *probe* does: ``GET /healthz``
on a fresh connection, with a short timeout. The route is answered by the gateway's event
loop at once (no store, no node: ``registry/api.py``), so a live gateway, however busy its
requests are, answers it; a hung process cannot.

:class:`HangWatch`, for one wait on one gateway::

    answer not in after first_s        probe (GET /healthz, at most probe_s)
    then every every_s (from one probe's start to the next; never two at once)
    probe ANSWERED (any HTTP status)   alive: its misses start again from 0
    probe SILENT (no answer in probe_s,
      connection refused or cut)       a miss
    probe UNKNOWN (the client's own
      connection pool was full)        nothing learnt
    ``misses`` misses in a row         hung: the caller gives up on that gateway

With :data:`DEFAULT_POLICY` a hung gateway is given up ~9 s after the request went out
(probes at 4 s and 7 s, each unanswered for 2 s); a live one is never given up, only
probed every 3 s while its answer is not in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = ["DEFAULT_POLICY", "HangPolicy", "HangWatch", "Probe"]


class Probe(str, Enum):
    """What one ``GET /healthz`` probe got."""

    ANSWERED = "answered"  # an HTTP answer, whatever its status: the process runs
    SILENT = "silent"  # nothing within the probe's time (or refused, or cut)
    UNKNOWN = "unknown"  # never sent (the client's own pool): says nothing of the gateway


@dataclass(frozen=True)
class HangPolicy:
    """When to probe and how many unanswered probes in a row mean hung."""

    first_s: float = 4.0  # the first probe, this long after the request went out
    every_s: float = 3.0  # the next ones, this long after the previous one's start
    probe_s: float = 2.0  # a probe's whole time: connect, send, answer
    misses: int = 2  # unanswered probes in a row: hung

    def __post_init__(self) -> None:
        times = (self.first_s, self.every_s, self.probe_s)
        if not all(t > 0 and math.isfinite(t) for t in times) or self.misses < 1:
            raise ValueError("need first_s, every_s, probe_s > 0 (finite) and misses >= 1")

    @property
    def give_up_s(self) -> float:
        """How long after the request a gateway that never answers is given up (when every
        probe waits its whole ``probe_s``): the last probe's start plus its time."""
        last_start = self.first_s + (self.misses - 1) * max(self.every_s, self.probe_s)
        return last_start + self.probe_s


DEFAULT_POLICY = HangPolicy()


class HangWatch:
    """One wait's probes (see the module docstring); ``started``: when the request went out."""

    __slots__ = ("missed", "next_at", "policy")

    def __init__(self, policy: HangPolicy, started: float) -> None:
        self.policy = policy
        self.next_at = started + policy.first_s  # the next probe's start
        self.missed = 0  # unanswered probes in a row

    def probe_due(self, now: float) -> float:
        """Seconds until the next probe is due (0: now)."""
        return max(0.0, self.next_at - now)

    def probed(self, began: float, result: Probe) -> bool:
        """A probe that began at ``began`` got ``result``; whether the gateway is now taken
        for hung. The next probe is due ``every_s`` after ``began`` (at once if that is past)."""
        self.next_at = began + self.policy.every_s
        if result is Probe.ANSWERED:
            self.missed = 0
        elif result is Probe.SILENT:
            self.missed += 1
        return self.missed >= self.policy.misses
