"""The in-memory store's usage-audit state (``registry/store_usage_audit.py``'s, in dicts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from LLM_Mesh.core.usage_evidence import open_bucket, unread_sums
from LLM_Mesh.registry.ports import UsageAuditRows, UsageEvidenceRow, UsageWindowRow

__all__ = ["MemoryUsageAudit", "unread_rows"]


def unread_rows(
    model: str, now: Iterable[UsageWindowRow], seen: Iterable[UsageWindowRow], into: int
) -> list[UsageWindowRow]:
    """What ``now``'s rows (a fold's windows, read again under its lock) gained since the
    fold's read (``seen``), each node's in window ``into``, the first open one
    (``core/usage_evidence.unread_sums``; both stores' rule; found 2026-12-06, audit33).
    Each store leaves out of ``seen`` the nodes whose evidence the fold may not write (its
    epoch moved: a verdict claimed since the read dropped their rows, so all they hold now
    came after it; found 2026-12-06, review33: 4 such answers counted 1)."""
    gained = unread_sums(
        {(r.bucket, r.node_id): r.sums() for r in now},
        {(r.bucket, r.node_id): r.sums() for r in seen},
    )
    return [UsageWindowRow(model, into, n, *sums) for n, sums in gained.items()]


class MemoryUsageAudit:
    """Window sums, evidence and fold marks in dicts (same rules as the SQL store's)."""

    def __init__(self) -> None:
        self.usage_windows: dict[tuple[str, int, str], UsageWindowRow] = {}
        self.usage_evidence: dict[tuple[str, str], UsageEvidenceRow] = {}
        self.usage_folds: dict[str, int] = {}

    async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
        for r in rows:  # a folded window's sum: to the first open one (attack32c)
            r = replace(r, bucket=open_bucket(r.bucket, self.usage_folds.get(r.model, -1)))
            key = (r.model, r.bucket, r.node_id)
            had = self.usage_windows.get(key)
            if had is not None:
                r = replace(
                    had,
                    requests=had.requests + r.requests,
                    completion=had.completion + r.completion,
                    completion_cap=had.completion_cap + r.completion_cap,
                    prompt=had.prompt + r.prompt,
                    prompt_cap=had.prompt_cap + r.prompt_cap,
                )
            self.usage_windows[key] = r

    async def usage_audit_rows(self, model: str) -> UsageAuditRows:
        mark = self.usage_folds.get(model, -1)
        windows = [r for r in self.usage_windows.values() if r.model == model and r.bucket > mark]
        evidence = [r for r in self.usage_evidence.values() if r.model == model]
        return UsageAuditRows(mark, windows, evidence)

    def _write(self, r: UsageEvidenceRow) -> bool:
        had = self.usage_evidence.get((r.model, r.node_id))
        if (had.epoch if had is not None else 0) != max(0, r.epoch):
            return False
        self.usage_evidence[(r.model, r.node_id)] = replace(r, epoch=max(0, r.epoch) + 1)
        return True

    async def fold_usage_audit(
        self,
        model: str,
        *,
        expect: int,
        through: int,
        rows: list[UsageEvidenceRow],
        seen: Sequence[UsageWindowRow],
    ) -> bool:
        if self.usage_folds.get(model, -1) != expect:
            return False
        self.usage_folds[model] = through
        started_over = {r.node_id for r in rows if not self._write(r)}  # claimed meanwhile
        seen = [r for r in seen if r.node_id not in started_over]  # (review33)
        now = [r for k, r in self.usage_windows.items() if k[0] == model and expect < k[1]
               and k[1] <= through]  # fmt: skip
        for key in [k for k in self.usage_windows if k[0] == model and k[1] <= through]:
            del self.usage_windows[key]
        await self.add_usage_windows(unread_rows(model, now, seen, through + 1))
        return True

    async def claim_usage_verdict(self, model: str, node_id: str, epoch: int, bucket: int) -> bool:
        fresh = UsageEvidenceRow(
            model, node_id, epoch, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, bucket
        )
        if not self._write(fresh):
            return False
        for key in [k for k in self.usage_windows if k[0] == model and k[2] == node_id]:
            del self.usage_windows[key]
        return True

    async def prune_usage_audit(self, *, max_entries: int, before_bucket: int) -> int:
        old = [k for k in self.usage_windows if k[1] < before_bucket]
        for key in old:
            del self.usage_windows[key]
        for model in [m for m, f in self.usage_folds.items() if f < before_bucket]:
            del self.usage_folds[model]
        over = len(self.usage_evidence) - max(1, max_entries)
        oldest = sorted(self.usage_evidence, key=lambda k: self.usage_evidence[k].bucket)
        for pair in oldest[: max(0, over)]:
            del self.usage_evidence[pair]
        return len(old) + max(0, over)
