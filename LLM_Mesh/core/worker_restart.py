"""When a registry worker that died is started again (``registry serve --workers N``).

The supervisor (:mod:`LLM_Mesh.registry.workers`) restarts a worker process that exited
while nobody asked it to stop. A worker that keeps dying at start (its database gone, a
bad certificate) must not be restarted in a tight loop that fills the log and burns a
core: :class:`RestartPolicy` waits 1, 2, 4, 8, 16, then 30 s between the restarts of one
worker while each run lived less than ``steady_s`` (:class:`~LLM_Mesh.core.retry.Backoff`'s
delays, its exponent capped: a loop of days does not overflow); a run that lived
``steady_s`` or longer starts the count again (its death is news, not a crash loop). Times are one monotonic
clock's seconds, given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from LLM_Mesh.core.retry import Backoff

__all__ = ["RestartPolicy"]


@dataclass
class RestartPolicy:
    first_s: float = 1.0
    max_s: float = 30.0
    steady_s: float = 60.0
    crashes: int = 0  # short runs in a row

    def died(self, lived_s: float) -> float:
        """A run of ``lived_s`` seconds ended unasked: the seconds to wait before the next."""
        self.crashes = 1 if lived_s >= self.steady_s else self.crashes + 1
        return Backoff(base_s=self.first_s, max_s=self.max_s).delay(self.crashes)
