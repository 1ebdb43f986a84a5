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

The registry's process (``llm-mesh registry serve``, and the one ``llm-mesh up`` starts)
has one overall bound instead, :data:`DEFAULT_REGISTRY_SHUTDOWN_S` from the signal
(``registry/stop_watchdog.py``): its steps are bounded where they can be (settlement's
stop: 60 s), but a store call hung for good in a database thread can hold what follows
(the connection's close, the interpreter's join of that thread) for ever. Past the bound
it logs :func:`overdue_warning` and exits with :data:`STOP_OVERDUE_STATUS`.

Pure: plain numbers in, plain numbers out; the caller's clock (monotonic seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_REGISTRY_SHUTDOWN_S",
    "DEFAULT_SHUTDOWN_S",
    "STOP_OVERDUE_STATUS",
    "ShutdownBudget",
    "overdue_warning",
    "retry_goodbye",
]

DEFAULT_SHUTDOWN_S = 12.0
#: the registry's SIGTERM → exit, at most: over settlement's own stop bound (60 s,
#: ``settle_upkeep.py``) with 20 s for the drain and the other steps, and under systemd's
#: default ``TimeoutStopSec`` (90 s), so the process exits itself, its log complete
DEFAULT_REGISTRY_SHUTDOWN_S = 80.0
#: a registry's exit status when its stop ran past the bound (sysexits' EX_SOFTWARE)
STOP_OVERDUE_STATUS = 70


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


#: an await that only waits for its next period: a loop idle, not a step stuck
_IDLE = frozenset({"asyncio.tasks.sleep"})
_OURS = "LLM_Mesh."


def overdue_warning(
    bound_s: float, signal_name: str, tasks: Sequence[Sequence[str]], threads: Sequence[str]
) -> str:
    """The one line a registry logs when its stop ran past ``bound_s`` after ``signal_name``,
    naming what is still running: each task's chain of awaits (``tasks``, outermost first,
    each ``module.qualname``), shortened to this package's frames and the innermost one
    (what it waits on); loops merely sleeping till their next period only counted; and the
    threads still alive that the interpreter would join at exit (``threads``)."""
    busy = [chain for chain in tasks if chain and chain[-1] not in _IDLE]
    idle = sum(1 for chain in tasks if chain and chain[-1] in _IDLE)
    running = [_short(chain) for chain in busy]
    running += [f"thread {name}" for name in threads]
    if idle:
        running.append(f"{idle} loop(s) sleeping till their next period")
    what = "; ".join(running) if running else "nothing the process can name (its exit)"
    return (
        f"the registry did not stop within {bound_s:g} s of {signal_name}: still running: "
        f"{what}; exiting with status {STOP_OVERDUE_STATUS} (what those would still have "
        "written is lost; LLM_MESH_REGISTRY_SHUTDOWN_S sets the bound)"
    )


def _short(chain: Sequence[str]) -> str:
    """This package's frames of ``chain`` (prefix dropped; not its ASGI layers' ``__call__``)
    and its innermost; ``…`` for the frames left out."""
    parts: list[str] = []
    for i, name in enumerate(chain):
        if (name.startswith(_OURS) and not name.endswith(".__call__")) or i == len(chain) - 1:
            parts.append(name.removeprefix(_OURS))
        elif not parts or parts[-1] != "…":
            parts.append("…")
    return " > ".join(parts)
