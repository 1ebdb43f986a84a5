"""How long a registry's start waits for its database, and how often it tries again.

A replica that starts while PostgreSQL restarts, or while its connections are terminated
(``pg_terminate_backend``, a failover), must not exit: each step of its start that reads or
writes the store is tried again while it fails for a lost or refused connection
(``registry/start_retry.py`` says which errors are such), after a capped exponential backoff
(:class:`~LLM_Mesh.core.retry.Backoff`: 0.5 s doubling to 10 s), until
:data:`DEFAULT_START_WAIT_S` after the step's first failure; then the start gives up (the
process exits, its last error said). A step that works ends the wait: the next step's
failures have a deadline of their own. Times are one monotonic clock's seconds, given by
the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from LLM_Mesh.core.retry import Backoff

__all__ = ["DEFAULT_START_WAIT_S", "StartWait"]

DEFAULT_START_WAIT_S = 120.0  # a PostgreSQL restart or failover takes seconds to a minute


@dataclass(frozen=True)
class StartWait:
    deadline_s: float = DEFAULT_START_WAIT_S
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, max_s=10.0))

    def __post_init__(self) -> None:
        if self.deadline_s < 0:
            raise ValueError("deadline_s must be >= 0")

    def wait_before(self, retry: int, failing_s: float) -> float | None:
        """Seconds to wait before try number ``retry`` + 1 of a step (``retry`` 1: after
        its first failure) that has failed for ``failing_s`` seconds since its first
        failure; ``None``: give up (the deadline has passed). The last wait ends at the
        deadline, not past it."""
        left = self.deadline_s - failing_s
        if left <= 0:
            return None
        return min(self.backoff.delay(retry), left)
