"""The gateway's audit by peers of the token counts nodes state (``core/usage_audit.py``).

The account stage hands every answered request here (:meth:`UsageAuditor.answered`): the
answering node's completion and prompt tokens as priced and the gateway's caps of them
(``Tally.completion_cap``, ``Job.prompt_bound``); four integers, no prompt, no text. A
continued stream (several nodes' parts), an echoed prompt (its text in the completion) and
an answer whose node stated no counts are left out, and so is a request whose client
narrowed the nodes it may go to (``allow_nodes``, ``deny_nodes``, ``avoid_regions``,
``trusted_only``; a probe is pinned so too); a request opted in to the nodes that may keep
prompts (``allow_prompt_keeping``, by its body or its API key) is compared only with the
other opted-in requests (its own key: ``mistral-7b (keeping allowed)``): those nodes get
only such requests, which a user could fill with text of many tokens a byte while every
other node gets prose by default, but any node of the model may take an opted-in one, so
all of them get the same mix of those (until 2026-12-06 they were left out, so a node
that may keep prompts was never audited at all: found and closed 2026-12-06,
``keepers34``); a request some node of the model online
could not take for its declared context (the prompt's least tokens + ``max_tokens`` above
it) is compared only among the nodes declaring as much (its own key: ``mistral-7b
(context 32768)``; since 2026-12-05, ``attack31b``): else a user could send one honest node hundreds of requests of
text with many tokens a byte (digits: one a byte) while its peers get prose, and have it
quarantined and its operator's earnings held (a node does not learn whether a request was
narrowed: the extensions are stripped, so a liar cannot state honest counts to those only).

A verdict (a node's share of its caps more than twice its model's other nodes' median over
the same time windows, ``core/usage_audit.py``; the windows on the injected ``clock``)
goes the way a failed canary probe goes: :meth:`Quality.record` with ``ok=False`` and the
verdict as its reason (``usage_audit: completion tokens at 1.00 of the gateway's cap ...``):
the node is quarantined for that model (out of its routing), its earnings and its
operator's other nodes' are held from then (``registry/held.py``) until the admin's
``llm-mesh registry nodes clear``, which releases them. It is counted
(``llm_mesh_gateway_usage_audit_flags_total``) and logged, and the admin sees each node's
shares and the recent verdicts at ``GET /mesh/usage-audit``; the quarantine's reason is in
the admin's and the public node listing as any quarantine's.

With a store that keeps it (the SQL and memory stores: ``store=``), the evidence is the
store's (``registry/usage_audit_sync.py``, migration 0026; since 2026-12-05,
``auditshare32``): every replica adds its answers' sums in batches, off the request's path,
and judges what all of them wrote every ``flush_s`` (2 s), so a node's answers spread over
several replicas count together and a restart goes on where it stopped; a verdict is
claimed once (the first replica to start the node's evidence over). Without one (tests,
benchmarks) the audit is this process's, in memory (``core/usage_audit.UsageAudit``),
judged on the answer. Either way the windows are on the wall clock (``clock``), the
quarantine goes through the store, so every replica and the ledger's holds follow a verdict
of any one of them, and it is not a failed probe: the node's ``canary_failed`` does not
move (found 2026-12-05, ``auditshare32``: one more failed probe in ``llm-mesh node info``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from LLM_Mesh.core.stream_guard import node_context
from LLM_Mesh.core.usage_audit import (
    DEFAULT_POLICY,
    AuditPolicy,
    AuditSample,
    AuditVerdict,
    UsageAudit,
    context_tier,
)
from LLM_Mesh.core.validation import estimate_min_tokens
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.job import Job, Tally
from LLM_Mesh.registry.metrics import GatewayMetrics
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import UsageAuditStore
from LLM_Mesh.registry.quality import Quality
from LLM_Mesh.registry.usage_audit_sync import UsageAuditSync

__all__ = ["UsageAuditor", "declared_contexts", "model_of"]

log = logging.getLogger(__name__)

RECENT_VERDICTS = 64  # kept for the admin's view


def declared_contexts(table: NodeTable) -> Callable[[str], Iterable[int]]:
    """A model's online nodes' declared contexts from the node table (0: none declared)."""

    def contexts(model: str) -> Iterable[int]:
        for entry in table.healthy_entries_for(model):
            hosted = entry.models.get(model)
            # read as the stream limit reads it (at most MAX_CONTEXT; found 2026-12-05,
            # attack32c: a declared 10^250 made an audit key the store refused)
            yield node_context(hosted.context_length, 0) if hosted is not None else 0

    return contexts


# the audit key's suffix for a request opted in to the nodes that may keep prompts
KEEPING_ALLOWED = " (keeping allowed)"


def model_of(stratum: str) -> str:
    """The model of an audit key (``mistral-7b (context 32768) (keeping allowed)``:
    ``mistral-7b``)."""
    return stratum.removesuffix(KEEPING_ALLOWED).split(" (context ", 1)[0]


class UsageAuditor:
    """See the module docstring."""

    def __init__(
        self,
        quality: Quality | None,
        *,
        policy: AuditPolicy = DEFAULT_POLICY,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
        contexts: Callable[[str], Iterable[int]] | None = None,
        store: UsageAuditStore | None = None,
        flush_s: float = 2.0,
        store_clock: bool = False,
    ) -> None:
        self.audit = UsageAudit(policy)
        # the store's shared evidence (None: this process's, in memory: ``self.audit``)
        self.shared = (
            None
            if store is None
            else UsageAuditSync(
                store,
                policy,
                self._shared_verdict,
                clock=clock,
                flush_s=flush_s,
                store_clock=store_clock,
            )
        )
        # a model's online nodes' declared contexts (0: none declared, the catalog's)
        self.contexts = contexts
        self.clock = clock  # the audit's time windows (a node against its peers in the same)
        self.quality = quality
        self.metrics = metrics
        self.verdicts: deque[AuditVerdict] = deque(maxlen=RECENT_VERDICTS)
        self._pending: set[asyncio.Task[None]] = set()

    def answered(self, job: Job, tally: Tally) -> AuditVerdict | None:
        """One answered request (the account stage's record of an ``ok`` outcome)."""
        node, ext = tally.node_id, job.ext
        if (
            node is None
            or ext.allow_nodes is not None  # the client chose the node (a probe too)
            or ext.deny_nodes
            or ext.avoid_regions
            or ext.trusted_only  # only the nodes trusted now (a few, or one)
            or tally.parts
            or tally.failed_nodes
            or job.echo
            or tally.completion_cap < 0
            or tally.prompt_tokens <= 0
        ):
            return None
        stratum = self._stratum(job)
        if stratum is None:
            return None
        if ext.allow_prompt_keeping:  # among the opted-in only: the nodes that may keep
            stratum += KEEPING_ALLOWED  # prompts get no other request
        prompt_cap = job.prompt_bound
        sample = AuditSample(
            tally.completion_tokens,
            tally.completion_cap,
            min(tally.prompt_tokens, prompt_cap),
            prompt_cap,
        )
        if self.shared is not None:  # in memory, written and judged off the request's path
            self.shared.add(stratum, node, sample)
            return None
        verdict = self.audit.observe(node, stratum, sample, self.clock())
        if verdict is not None:
            verdict = replace(verdict, model=job.model)  # quarantined for the model
            self._flag(verdict)
        return verdict

    def _stratum(self, job: Job) -> str | None:
        """The audit's key for the request: its model when every node of the model online
        could take it; when some declares a context the request surely does not fit (the
        send stage skips those: ``Send._check_context``), the model and the smallest
        context it fits (``core/usage_audit.context_tier``): compared only with the nodes
        that could take it too; ``None``: none could."""
        if self.contexts is None:
            return job.model
        need = job.max_tokens + estimate_min_tokens(job.prompt_text)
        tier = context_tier(need, self.contexts(job.model))
        if tier == 0:
            return job.model
        return None if tier < 0 else f"{job.model} (context {tier})"

    def _shared_verdict(self, verdict: AuditVerdict) -> None:
        self._flag(replace(verdict, model=model_of(verdict.model)))  # quarantined for the model

    def round_logs(self) -> Iterable[RoundLog]:
        """The shared evidence's loop (none without a store) (``failed_rounds.HasRoundLogs``)."""
        return () if self.shared is None else self.shared.round_logs()

    def start(self) -> None:
        """Start writing and judging the shared evidence (with a store)."""
        if self.shared is not None:
            self.shared.start()

    async def stop(self) -> None:
        """Stop; what is pending written (with a store), the quarantines under way awaited."""
        if self.shared is not None:
            await self.shared.stop()
        await self.settled()

    def _flag(self, verdict: AuditVerdict) -> None:
        self.verdicts.append(verdict)
        log.warning(
            "usage audit: node %s flagged for %s: %s",
            verdict.node_id,
            verdict.model,
            verdict.describe(),
        )
        if self.metrics is not None:
            self.metrics.usage_flagged(verdict.kind)
        if self.quality is None:
            return
        task = asyncio.get_running_loop().create_task(self._quarantine(verdict))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _quarantine(self, verdict: AuditVerdict) -> None:
        quality = self.quality
        if quality is None or quality.quarantined(verdict.node_id, verdict.model):
            return
        try:
            await quality.record(  # not a failed probe: canary_failed stays
                verdict.node_id, verdict.model, ok=False, reason=verdict.describe(), probe=False
            )
        except Exception:  # the store failed: the next verdict tries again
            log.exception("usage audit: could not quarantine node %s", verdict.node_id)

    async def settled(self) -> None:
        """Wait for the quarantines under way (tests; a clean shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def view(self) -> dict[str, Any]:
        """What ``GET /mesh/usage-audit`` answers the admin."""
        p = self.audit.policy
        return {
            "policy": {
                "min_requests": p.min_requests,
                "factor": p.factor,
                "min_peers": p.min_peers,
                "bucket_s": p.bucket_s,
                "bucket_min": p.bucket_min,
                "window": p.window,
            },
            # the store's (every replica's answers, as last judged here) or this process's
            "evidence": "memory" if self.shared is None else "store",
            "nodes": self.audit.view() if self.shared is None else self.shared.view(),
            "verdicts": [
                {
                    "node_id": v.node_id,
                    "model": v.model,
                    "kind": v.kind,
                    "share": round(v.share, 4),
                    "peers_median": round(v.peers_median, 4),
                    "peers": v.peers,
                    "requests": v.requests,
                    "reason": v.describe(),
                }
                for v in self.verdicts
            ],
        }
