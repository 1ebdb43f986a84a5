"""The usage audit's state as a store shares it: window sums and evidence, folded and judged.

``core/usage_audit.py`` keeps a node's evidence and the model's open window in one process's
memory. Shared through the store (``registry/usage_audit_sync.py``: every replica of a
registry on one database, and the same one after a restart), the state is rows: per
(model, window, node) the node's sums in that window (:class:`~LLM_Mesh.core.usage_audit.
NodeUsage`; every replica adds the answers it relayed), and per (model, node) its evidence
(:class:`~LLM_Mesh.core.usage_audit.Evidence`). A window is closed for good
:attr:`grace_s <window_due>` after its end (the replicas' last answers in it written by
then) and folded into the evidence once, by one replica (:func:`fold_windows`); the windows
not yet folded count as if they closed now (:func:`standing`), each against its own peers'
median, so a verdict does not wait for them (:func:`verdicts`). One sort a window and kind
for every node of the model (:func:`~LLM_Mesh.core.usage_audit.window_table`), not one a
node's check. Windows are on a wall clock (``bucket_of``): every replica, and the registry
after a restart, must cut time at the same instants. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from LLM_Mesh.core.usage_audit import (
    AuditPolicy,
    AuditVerdict,
    Evidence,
    NodeUsage,
    judge,
    window_add,
    window_table,
)

__all__ = [
    "bucket_of", "fold_window", "fold_windows", "open_bucket", "standing", "unread_sums",
    "verdicts", "window_due",
]  # fmt: skip


def bucket_of(now: float, policy: AuditPolicy) -> int:
    """The window of ``now`` (seconds since the epoch): ``now // bucket_s``."""
    t = now / max(1e-9, policy.bucket_s)
    return int(t) if math.isfinite(t) else 0


def open_bucket(bucket: int, folded: int) -> int:
    """Where a sum for window ``bucket`` is added once the model's windows through
    ``folded`` are folded (-1: none): there, else the first window still open. A replica
    whose clock is behind by more than the grace, or whose writes failed as long, wrote
    into a folded window, never read again (found 2026-12-05, attack32c)."""
    return max(bucket, folded + 1)


def unread_sums(
    now: Mapping[tuple[int, str], Sequence[int]], read: Mapping[tuple[int, str], Sequence[int]]
) -> dict[str, tuple[int, ...]]:
    """What each node's window rows (sums by (window, node)) gained since a fold read them
    (``read``), summed by node. A fold drops the rows it folded, so a replica's sums added
    in between (after its read, before its commit) were dropped unread (found 2026-12-06,
    audit33); the fold adds them to the first open window instead. A row with a sum below
    the one read was started over in between (a verdict claimed): all of it is new. Nodes
    that gained nothing are left out."""
    out: dict[str, tuple[int, ...]] = {}
    for (_window, node_id), sums in sorted(now.items()):
        was = read.get((_window, node_id))
        if was is None or any(s < w for s, w in zip(sums, was, strict=True)):
            was = (0,) * len(sums)
        gained = tuple(s - w for s, w in zip(sums, was, strict=True))
        if any(gained):
            had = out.get(node_id, (0,) * len(sums))
            out[node_id] = tuple(h + g for h, g in zip(had, gained, strict=True))
    return out


def window_due(bucket: int, now: float, policy: AuditPolicy, grace_s: float) -> bool:
    """Whether window ``bucket`` ended ``grace_s`` seconds or more before ``now`` (the
    replicas' answers in it all written: it can be folded for good)."""
    return now >= (bucket + 1) * max(1e-9, policy.bucket_s) + max(0.0, grace_s)


def fold_window(
    evidence: Mapping[str, Evidence], window: Mapping[str, NodeUsage], policy: AuditPolicy
) -> dict[str, Evidence]:
    """Each node's evidence after the closed ``window`` (its nodes' sums in it): only the
    nodes it adds to (a node that shared it with :attr:`~AuditPolicy.min_peers` peers),
    halved past :attr:`~AuditPolicy.window` answers."""
    table = window_table(window.values(), policy)
    out: dict[str, Evidence] = {}
    for node_id, usage in window.items():
        add = window_add(usage, table, policy)
        if add is None:
            continue
        ev = evidence.get(node_id, Evidence()).merged(add)
        if ev.requests >= max(2, policy.window):
            ev.halve()
        out[node_id] = ev
    return out


def fold_windows(
    evidence: Mapping[str, Evidence],
    windows: Mapping[int, Mapping[str, NodeUsage]],
    policy: AuditPolicy,
) -> dict[str, Evidence]:
    """:func:`fold_window` of each of ``windows`` (by index) in order: the nodes changed."""
    now = dict(evidence)
    changed: dict[str, Evidence] = {}
    for index in sorted(windows):
        new = fold_window(now, windows[index], policy)
        now.update(new)
        changed.update(new)
    return changed


def standing(
    evidence: Mapping[str, Evidence],
    windows: Iterable[Mapping[str, NodeUsage]],
    policy: AuditPolicy,
) -> dict[str, Evidence]:
    """Each node's evidence as it stands: its folded ``evidence`` and what each window not
    yet folded adds to it, as if that window closed now (one table a window)."""
    out = dict(evidence)
    for window in windows:
        table = window_table(window.values(), policy)
        for node_id, usage in window.items():
            add = window_add(usage, table, policy)
            if add is not None:
                out[node_id] = out.get(node_id, Evidence()).merged(add)
    return out


def verdicts(model: str, now: Mapping[str, Evidence], policy: AuditPolicy) -> list[AuditVerdict]:
    """The model's nodes far above their peers on their evidence as it stands (``now``:
    :func:`standing`), by node."""
    found = (judge(node_id, model, now[node_id], policy) for node_id in sorted(now))
    return [v for v in found if v is not None]
