"""The usage audit's evidence through the store: shared by replicas, kept over a restart.

Each replica (and ``--workers`` process) relays a share of a node's answers. Audited in
memory, each saw its share only (a liar spread over 3 replicas needed 3 times the answers)
and a restart started over (found 2026-12-05, ``auditshare32``). Here the answers' sums go
to the store (``registry/store_usage_audit.py``, migration 0026) and every replica judges
what all of them wrote (``core/usage_evidence.py``):

- **hot path** (:meth:`UsageAuditSync.add`, the account stage): one answer added to this
  replica's pending sums of (model, window, node), in memory; no I/O, no commit. Bounded
  (:attr:`max_pending` keys; past it an answer is dropped and counted, as one whose key is
  too long for the store, :data:`MAX_KEY_CHARS`).
- **every** ``flush_s`` (2 s; :meth:`UsageAuditSync.run_once`): the pending sums in one
  transaction (additions to the rows: several replicas add to one node's window); then for
  each model this replica answered for since the last run: its rows read back (every
  replica's), the windows closed for good (``grace_s``, 30 s, after their end) folded into
  the evidence once (the first replica to move the model's mark; its epoch-checked rows), the
  evidence as it stands judged (one sort a window and kind for all of the model's nodes), and
  each verdict claimed (the first replica to start the node's evidence over) and handed to
  ``on_verdict``. A failed write keeps the pending sums (merged with the next, bounded) and
  is logged.
- **at stop** (:meth:`UsageAuditSync.stop`, the lifespan's end, SIGTERM; the loop, start
  and stop are ``store_batch.StoreBatch``'s, shared with ``canary_departures_sync.py``): a
  run under way ends first (cancelled in its write, its batch was lost: found 2026-12-06,
  audit33), then what came meanwhile is written, each wait bounded by ``stop_s`` (a store
  that never answered hung the shutdown: found 2026-12-06, review33; the answers not
  written are logged). A replica killed loses its pending sums (``flush_s``).
- **every** ``prune_every`` runs: the windows' rows older than a day and the least recently
  written evidence past :attr:`AuditPolicy.max_entries` (node, model) pairs dropped.

Windows are on the wall clock (``clock``: seconds since the epoch), the same instants for
every replica and across a restart. With ``store_clock`` (the gateway's), on PostgreSQL
(replicas on several hosts) each run first measures this host's offset from the database
server's clock (``usage_audit_now``: one round trip) and every window is cut on the
server's (:meth:`UsageAuditSync.now`; a measure whose round trip took longer than
``clock_rtt_s``, or not finite, is not taken, the last offset kept: found 2026-12-06,
review33, a minute-long round trip moved the windows by half of it): a host's clock
ahead by more than the grace folded a window the other replicas still wrote into (found
2026-12-05, attack32c; closed 2026-12-06, audit33). A sum that still reaches a folded window (its writes failed past
the grace) goes to the first open one (the store's ``add_usage_windows``: found
2026-12-05, attack32c, never read again).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core.usage_audit import (
    AuditPolicy,
    AuditSample,
    AuditVerdict,
    Evidence,
    NodeUsage,
    view_row,
)
from LLM_Mesh.core.usage_evidence import bucket_of, fold_windows, standing, verdicts, window_due
from LLM_Mesh.registry.ports import UsageAuditStore, UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.store_batch import StoreBatch

__all__ = ["UsageAuditSync", "shares_usage_audit"]

log = logging.getLogger(__name__)

KEEP_WINDOWS_S = 86_400.0  # a window's rows left unfolded (a quiet model's) dropped after
# the store's width of an audit key (``tables.usage_audit_*.model``): a longer one is not
# counted; found 2026-12-05 (attack32c), PostgreSQL refused the whole batch, kept and
# refused again every run, so no answer of any model counted again. Wider than the longest
# key (a model id of ``MAX_MODEL_ID_CHARS``, ``(context N)`` with N at most
# ``MAX_CONTEXT``, `` (keeping allowed)``: 292), migration 0027: at 256 a model id near 256 characters was not
# audited on the requests only its larger contexts take (closed 2026-12-06, audit33)
MAX_KEY_CHARS = 320
MAX_VIEWS = 1024  # models whose last judged state the admin's view keeps
_SUMS = ("requests", "completion", "completion_cap", "prompt", "prompt_cap")  # a NodeUsage's


def shares_usage_audit(store: Any) -> bool:
    """Whether ``store`` keeps the usage audit's evidence (the SQL and memory stores do)."""
    names = (
        "add_usage_windows", "usage_audit_rows", "fold_usage_audit", "claim_usage_verdict",
        "prune_usage_audit",
    )  # fmt: skip
    return all(callable(getattr(store, name, None)) for name in names)


def _evidence(r: UsageEvidenceRow) -> Evidence:
    ev = Evidence(r.requests, r.peer_requests, r.peers)
    ev.priced.update(completion=r.completion, prompt=r.prompt)
    ev.cap.update(completion=r.completion_cap, prompt=r.prompt_cap)
    ev.ref.update(completion=r.completion_ref, prompt=r.prompt_ref)
    return ev


def _row(model: str, node_id: str, ev: Evidence, epoch: int, bucket: int) -> UsageEvidenceRow:
    return UsageEvidenceRow(
        model, node_id, epoch, ev.requests, ev.peer_requests, ev.peers,
        ev.priced["completion"], ev.cap["completion"], ev.ref["completion"],
        ev.priced["prompt"], ev.cap["prompt"], ev.ref["prompt"], bucket,
    )  # fmt: skip


class UsageAuditSync(StoreBatch):
    """See the module docstring."""

    what = "usage audit"

    def __init__(
        self,
        store: UsageAuditStore,
        policy: AuditPolicy,
        on_verdict: Callable[[AuditVerdict], None],
        *,
        clock: Callable[[], float] = time.time,
        flush_s: float = 2.0,
        grace_s: float = 30.0,
        prune_every: int = 300,
        max_pending: int | None = None,
        store_clock: bool = False,
        stop_s: float = 10.0,
        clock_rtt_s: float = 2.0,
    ) -> None:
        if flush_s <= 0 or prune_every < 1:
            raise ValueError("flush_s and prune_every must be positive")
        super().__init__(flush_s, stop_s)
        self.store, self.policy, self.on_verdict = store, policy, on_verdict
        self.clock, self.grace_s = clock, grace_s
        self.prune_every = prune_every
        self.store_clock = store_clock  # the windows on the database server's clock
        self.offset_s = 0.0  # the server's clock less ``clock``, as last measured
        # a measure of the offset whose round trip took longer is not taken (review33)
        self.clock_rtt_s = clock_rtt_s
        self.clock_skips = 0  # measures not taken
        self.max_pending = max(1, policy.max_entries if max_pending is None else max_pending)
        self.pending: dict[tuple[str, int, str], NodeUsage] = {}
        self.touched: set[str] = set()  # models answered for since the last run
        # the admin's view, by model: the standing last judged, each node's open-window answers
        self.views: dict[str, tuple[dict[str, Evidence], dict[str, int]]] = {}
        self.dropped = 0  # answers not counted: pending full
        self.runs = 0

    # -- hot path ---------------------------------------------------------------------
    def add(self, model: str, node_id: str, sample: AuditSample) -> None:
        """One answer of ``node_id`` for ``model`` (the audit's key), now: in memory."""
        key = (model, bucket_of(self.now(), self.policy), node_id)
        usage = self.pending.get(key)
        if usage is None:
            if len(self.pending) >= self.max_pending or len(model) > MAX_KEY_CHARS:
                self.dropped += 1
                return
            usage = self.pending[key] = NodeUsage()
        usage.add(sample)
        self.touched.add(model)

    # -- background (``store_batch.StoreBatch``: the loop, start and stop) --------------
    def pending_note(self) -> str:
        return f"{sum(u.requests for u in self.pending.values())} answer(s)"

    def now(self) -> float:
        """The time the windows are cut on: ``clock`` and the offset last measured."""
        return self.clock() + self.offset_s

    async def sync_clock(self) -> None:
        """With ``store_clock``, measure this host's offset from the store's clock (a
        store with none, SQLite's on this host: no offset)."""
        read = getattr(self.store, "usage_audit_now", None)
        if not self.store_clock or read is None:
            return
        before = self.clock()
        theirs = await read()
        after = self.clock()
        if theirs is None:
            self.offset_s = 0.0
            return
        offset = float(theirs) - (before + after) / 2
        if after - before > self.clock_rtt_s or not math.isfinite(offset):
            self.clock_skips += 1  # (logged the first time)
            (log.warning if self.clock_skips == 1 else log.debug)(
                "usage audit: the store's clock not taken (round trip %.3f s, offset %r): "
                "the last offset kept", after - before, offset)  # fmt: skip
            return
        self.offset_s = offset

    async def first(self) -> None:
        with contextlib.suppress(Exception):  # (a failure: the next run measures it)
            await self.sync_clock()  # before the first answers are put in windows

    async def tick(self) -> list[AuditVerdict]:
        """One run (:meth:`run_once`), each verdict claimed handed to ``on_verdict``."""
        found = await self.run_once()
        for verdict in found:
            self.on_verdict(verdict)
        return found

    async def flush(self) -> None:
        """Write the pending sums in one transaction (kept for the next try on failure)."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        rows = [
            UsageWindowRow(model, bucket, node_id, u.requests, u.completion, u.completion_cap,
                           u.prompt, u.prompt_cap)
            for (model, bucket, node_id), u in pending.items()
        ]  # fmt: skip
        try:
            await self.store.add_usage_windows(rows)
        except Exception:
            for key, u in pending.items():  # merged back with what came meanwhile, bounded
                mine = self.pending.get(key)
                if mine is None and len(self.pending) < self.max_pending:
                    self.pending[key] = u
                elif mine is not None:
                    for name in _SUMS:
                        setattr(mine, name, getattr(mine, name) + getattr(u, name))
                else:
                    self.dropped += u.requests
            raise

    async def run_once(self) -> list[AuditVerdict]:
        """Flush, then fold and judge each model answered for since the last run: the
        verdicts this replica claimed."""
        touched, self.touched = self.touched, set()
        try:
            await self.sync_clock()
            await self.flush()
        except Exception:
            self.touched |= touched
            raise
        out: list[AuditVerdict] = []
        for model in sorted(touched):
            out.extend(await self.check(model))
        self.runs += 1
        if self.runs % self.prune_every == 0:
            before = bucket_of(self.now() - KEEP_WINDOWS_S, self.policy)
            await self.store.prune_usage_audit(
                max_entries=self.policy.max_entries, before_bucket=before
            )
        return out

    async def check(self, model: str) -> list[AuditVerdict]:
        """Fold the model's windows closed for good, judge its nodes, claim the verdicts."""
        p, now = self.policy, self.now()
        bucket = bucket_of(now, p)
        rows = await self.store.usage_audit_rows(model)
        epochs = {r.node_id: r.epoch for r in rows.evidence}
        evidence = {r.node_id: _evidence(r) for r in rows.evidence}
        windows: dict[int, dict[str, NodeUsage]] = {}
        for w in rows.windows:
            windows.setdefault(w.bucket, {})[w.node_id] = NodeUsage(
                w.requests, w.completion, w.completion_cap, w.prompt, w.prompt_cap
            )
        due = {b: windows.pop(b) for b in sorted(windows) if window_due(b, now, p, self.grace_s)}
        if due:
            changed = fold_windows(evidence, due, p)
            written = [_row(model, n, ev, epochs.get(n, 0), bucket) for n, ev in changed.items()]
            through = max(due)
            seen = [w for w in rows.windows if w.bucket <= through]
            if not await self.store.fold_usage_audit(
                model, expect=rows.folded, through=through, rows=written, seen=seen
            ):
                self.touched.add(model)  # another replica folded first: judged next run
                return []
            evidence.update(changed)
            for n in changed:
                epochs[n] = epochs.get(n, 0) + 1
        open_ = [windows[b] for b in sorted(windows)]
        now_ev = standing(evidence, open_, p)  # one table a window not yet folded
        self._keep_view(model, now_ev, open_[-1] if open_ else {})
        out: list[AuditVerdict] = []
        for verdict in verdicts(model, now_ev, p):
            node_id = verdict.node_id
            if await self.store.claim_usage_verdict(model, node_id, epochs.get(node_id, 0), bucket):
                out.append(verdict)
                for key in [k for k in self.pending if k[0] == model and k[2] == node_id]:
                    del self.pending[key]  # its evidence starts over, here too
        return out

    def _keep_view(self, model: str, now: dict[str, Evidence], last: dict[str, NodeUsage]) -> None:
        """The model's standing as judged, for the admin's view (rows built when asked)."""
        self.views.pop(model, None)
        self.views[model] = (now, {n: u.requests for n, u in last.items()})
        while len(self.views) > MAX_VIEWS:
            del self.views[next(iter(self.views))]

    def view(self) -> list[dict[str, object]]:
        """Each (node, model)'s standing as this replica last judged it, by model then node."""
        rows: list[dict[str, object]] = []
        for model in sorted(self.views):
            now, open_requests = self.views[model]
            for node_id in sorted(set(now) | set(open_requests)):
                ev = now.get(node_id) or Evidence()
                rows.append(view_row(node_id, model, ev, open_requests.get(node_id, 0)))
        return rows
