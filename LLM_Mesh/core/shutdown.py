"""A node's shutdown, bounded: how long each step of SIGTERM → exit may take.

The steps (``node_manager.py``, ``node/service.py``, ``node/agent.py``):

1. **drain** — the server stops taking connections; requests in flight may finish for
   :attr:`ShutdownBudget.drain_s`, then they are cancelled (uvicorn's graceful timeout);
2. the heartbeat loop stops (a heartbeat in flight is abandoned: no wait);
3. **goodbye** — ``DELETE /mesh/nodes/{id}`` until :meth:`ShutdownBudget.goodbye_deadline`
   (at most ``goodbye_s`` from its start, and never past ``total_s - close_s`` after the
   signal); a try that timed out or got a 5xx is tried again while time is left
   (:func:`retry_goodbye`), one whose connection was refused is not: nothing listens
   there, and the registry takes the node out when its heartbeats expire anyway;
4. **close** — the engine and the HTTP client, in the ``close_s`` left.

So a node exits within ``total_s`` of the signal plus what closing the engine takes over
``close_s``, whatever the registry does; the default (12 s) is well inside the 15 s
``llm-mesh up`` waits before it kills (``local_mesh.py``).

Pure: plain numbers in, plain numbers out; the caller's clock (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SHUTDOWN_S", "ShutdownBudget", "retry_goodbye"]

DEFAULT_SHUTDOWN_S = 12.0


@dataclass(frozen=True)
class ShutdownBudget:
    """Seconds for each step of one shutdown, all out of ``total_s``."""

    total_s: float = DEFAULT_SHUTDOWN_S
    goodbye_s: float = 6.0  # the goodbye's own budget, when the drain left time for it
    goodbye_min_s: float = 2.5  # kept for the goodbye whatever the drain took
    close_s: float = 1.0  # kept for closing the engine and the client

    def __post_init__(self) -> None:
        if not self.total_s > 0:
            raise ValueError(f"a shutdown needs a positive total, got {self.total_s!r}")
        if min(self.goodbye_s, self.goodbye_min_s, self.close_s) < 0:
            raise ValueError("shutdown steps take zero seconds or more")

    @property
    def drain_s(self) -> float:
        """How long requests in flight may run after the signal."""
        return max(0.0, self.total_s - self.goodbye_min_s - self.close_s)

    def goodbye_deadline(self, began: float | None, now: float) -> float:
        """When the goodbye stops trying: ``goodbye_s`` after ``now``, but never later than
        ``total_s - close_s`` after the signal (``began``; ``None``: no signal, a stop from
        code: the goodbye's own budget only). Never before ``now``."""
        deadline = now + self.goodbye_s
        if began is not None:
            deadline = min(deadline, began + self.total_s - self.close_s)
        return max(now, deadline)


def retry_goodbye(
    *, refused: bool, tries: int, max_tries: int, now: float, deadline: float
) -> bool:
    """Whether a goodbye that failed is tried again: not when every registry refused the
    connection outright (gone: its heartbeats expire anyway), nor after ``max_tries`` or
    past ``deadline``; a timeout or a 5xx is tried again while both allow it."""
    return not refused and tries < max_tries and now < deadline
