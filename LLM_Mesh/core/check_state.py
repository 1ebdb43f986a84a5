"""What a registry tells a node of its active health checks: the heartbeat answer's
``health`` (written by ``registry/api.absorb_heartbeat`` from the node table, read by
``node/agent.py``).

``{"ok": false, "since": 1800000000.0, "checked_at": 1800000300.0, "why": "HTTP 503"}``:

- ``ok``: the last check's result (a failing node is out of routing there and its
  heartbeats credit no uptime until a check passes);
- ``since``: when the checks began to find it so (unix seconds, the registry's clock; the
  first check with this result); ``checked_at``: the last check's time;
- ``why``: the last failed check's reason, failing only; ``null`` when the registry does
  not know it (a result stored by a registry older than the reasons' column). Replicas on
  one store share ``since`` and ``why`` with the result (``registry/node_sync.py``): a node
  is told the same by every replica.

No ``health`` at all: no check of this node there yet (one runs every
``LLM_MESH_HEALTH_CHECK_S``), or a registry older than the field. Only the asking node's
own state is said. The node reads it tolerantly (:func:`told`): anything malformed is as
if absent, and an older node ignores the field (it never read the heartbeat answer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from LLM_Mesh.core.printable import printable

__all__ = ["MAX_WHY", "CheckState", "reason", "show_time", "told", "turned"]

MAX_WHY = 300  # characters of a failed check's reason said (the registry's log has it whole)


@dataclass(frozen=True)
class CheckState:
    """A registry's active health checks of one node, as it says them."""

    ok: bool
    since: float | None = None
    checked_at: float | None = None
    why: str | None = None

    def wire(self) -> dict[str, Any]:
        """The heartbeat answer's ``health`` object."""
        out: dict[str, Any] = {"ok": self.ok, "since": self.since, "checked_at": self.checked_at}
        if not self.ok:
            out["why"] = self.why
        return out


def reason(text: str | None) -> str | None:
    """A check's reason fit to send and to log: printable (control characters become
    spaces: no forged log lines, no terminal escapes), at most :data:`MAX_WHY` characters."""
    if text is None:
        return None
    clean = printable(text[: MAX_WHY * 2]).strip()
    return clean[:MAX_WHY] or None


def _time(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
        if math.isfinite(t) and t >= 0:
            return t
    return None


def told(raw: Any) -> CheckState | None:
    """The heartbeat answer's ``health`` as a node reads it; ``None`` when it is absent or
    not understood (never raises: a registry's odd answer changes nothing on the node)."""
    if not isinstance(raw, dict):
        return None
    ok = raw.get("ok")
    if not isinstance(ok, bool):
        return None
    why = raw.get("why")
    return CheckState(
        ok=ok,
        since=_time(raw.get("since")),
        checked_at=_time(raw.get("checked_at")),
        why=None if ok or not isinstance(why, str) else reason(why),
    )


def turned(
    failing_before: bool | None, now: CheckState | None
) -> Literal["failing", "passing"] | None:
    """What changed, for a node's log: ``"failing"`` when the checks fail and did not
    (as last told: passing, or never told), ``"passing"`` when they pass after failing;
    ``None`` when nothing changed or nothing was told (``now`` is ``None``)."""
    if now is None:
        return None
    if not now.ok and failing_before is not True:
        return "failing"
    if now.ok and failing_before is True:
        return "passing"
    return None


def show_time(t: float | None) -> str:
    """A registry's unix time for people: ``2027-01-15 08:00:00 UTC``."""
    if t is None:
        return "an unknown time"
    try:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "an unknown time"
