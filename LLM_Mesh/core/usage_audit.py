"""An audit by peers of the token counts nodes state to users: a node far above its peers.

The gateway has no tokenizer. It prices a node's part at the node's ``usage``, capped at
what it can count (``core/delivered.py``: the completion at most the UTF-8 bytes delivered
+ 16 a choice and the ``stop`` slack; ``Job.prompt_bound``: the prompt at most its bytes +
8 a message + 16). Canary probes hold a probe's counts to evidence (``core/canary_usage.py``),
but a node honest to probes only, stating a token a byte to users' requests, is paid 3-4
times its real tokens and a probe never sees it (docs/security.md, "states its token counts
at a byte a token"). What the gateway does see of every answer is its counts and those caps.

So, per node and model, :class:`UsageAudit` sums the counts priced and their caps (no
prompt, no text: four integers a request) and compares the node's **share of its caps**
(Σ priced ÷ Σ cap, for the completion and for the prompt) with the median share of the
model's other nodes that have :attr:`AuditPolicy.min_requests` answers too. A node whose
share is more than :attr:`AuditPolicy.factor` times that median, over at least as many
answers, gets an :class:`AuditVerdict` (the registry quarantines it and holds its
earnings as a failed probe does: ``registry/usage_audit.py``). A node stating a token a
byte is at a share of 1.0 (its every count at the cap); the real gemma-3-270m node's
honest answers at 0.19 (Russian) to 0.40 (Japanese), 0.265 for a mix of languages, code and
digits, digits alone 0.59; its prompts 0.16-0.23, digits 0.54 (``benchmarks/bench_usage_audit.py``,
docs/security.md).
The share of the cap, not tokens a byte, is compared: the cap's per-choice and
per-message slack makes a short answer or prompt weigh as a long one, so the traffic's
mix of lengths moves it less.

What a verdict needs (no verdict otherwise): the node's own :attr:`~AuditPolicy.min_requests`
answers since its last verdict, and :attr:`~AuditPolicy.min_peers` other nodes of the model
with as many (a model with a single node is not audited: no peers). The median is the
peers' own: a majority of the model's nodes inflating alike sets it (they are not flagged;
an honest node is never flagged by them either, only a share *above* the median is).

Bounded: four sums and a count per (node, model) seen, at most
:attr:`~AuditPolicy.max_entries` of them (the least recently answered forgotten first);
past :attr:`~AuditPolicy.window` answers a node's sums are halved, so its recent traffic
weighs most (a node that starts inflating after a long honest record is not hidden by it).
A verdict starts the node's sums over: a second verdict needs fresh evidence. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

__all__ = [
    "DEFAULT_POLICY", "KINDS", "AuditPolicy", "AuditSample", "AuditVerdict", "NodeUsage", "UsageAudit",
]  # fmt: skip


@dataclass(frozen=True)
class AuditPolicy:
    """When the audit speaks (docs/security.md: the thresholds and their measurement)."""

    min_requests: int = 200
    """Answers a node (and each peer) needs since its last verdict before its share is
    compared: the mix of a node's traffic averages out over them."""
    factor: float = 2.0
    """How far above the peers' median share a node is flagged. The real engine's share
    of one kind of text against another spans 3-4 times at the extremes (digits 0.59 or
    code 0.38 against Russian 0.19 or Hindi 0.10), but the audit counts only traffic the
    gateway routed, spread by load over the model's nodes: a node's mix is its peers'. One
    kind alone against peers with the mix is at most 1.5 times (Japanese), digits 2.2; a
    token a byte is 3.8-4.2 times the mix."""
    min_peers: int = 1
    """Other nodes of the model with :attr:`min_requests` answers a verdict needs."""
    window: int = 4096
    """Past this many answers a node's sums are halved (recent traffic weighs most)."""
    max_entries: int = 65_536
    """(node, model) pairs kept; the least recently answered is forgotten past it."""
    check_every: int = 8
    """A node's share is compared once every this many of its answers (a median of the
    peers a time, not an answer)."""


DEFAULT_POLICY = AuditPolicy()


@dataclass(frozen=True)
class AuditSample:
    """One answer: the completion and prompt tokens priced and the gateway's caps of them
    (``core/delivered.py``, ``Job.prompt_bound``)."""

    completion: int
    completion_cap: int
    prompt: int
    prompt_cap: int


@dataclass
class NodeUsage:
    """A node's sums for a model (since its last verdict, halved past the window)."""

    requests: int = 0
    completion: int = 0
    completion_cap: int = 0
    prompt: int = 0
    prompt_cap: int = 0

    def add(self, s: AuditSample) -> None:
        self.requests += 1
        self.completion += max(0, min(s.completion, s.completion_cap))
        self.completion_cap += max(0, s.completion_cap)
        self.prompt += max(0, min(s.prompt, s.prompt_cap))
        self.prompt_cap += max(0, s.prompt_cap)

    def halve(self) -> None:
        self.requests //= 2
        self.completion //= 2
        self.completion_cap //= 2
        self.prompt //= 2
        self.prompt_cap //= 2

    def share(self, kind: str) -> float | None:
        """Σ priced ÷ Σ cap of ``kind`` (``completion`` | ``prompt``); ``None``: no cap yet."""
        if kind == "completion":
            return self.completion / self.completion_cap if self.completion_cap > 0 else None
        return self.prompt / self.prompt_cap if self.prompt_cap > 0 else None


KINDS = ("completion", "prompt")


@dataclass(frozen=True)
class AuditVerdict:
    """A node's share of its caps far above its peers' median."""

    node_id: str
    model: str
    kind: str  # completion | prompt
    share: float
    peers_median: float
    peers: int
    requests: int

    def describe(self) -> str:
        return (
            f"usage_audit: {self.kind} tokens at {self.share:.2f} of the gateway's cap over "
            f"{self.requests} answers, the model's {self.peers} other nodes' median "
            f"{self.peers_median:.2f}"
        )


class UsageAudit:
    """See the module docstring."""

    def __init__(self, policy: AuditPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        # (model, node id) -> sums, least recently answered first; and each model's nodes
        self.usage: dict[tuple[str, str], NodeUsage] = {}
        self.by_model: dict[str, dict[str, NodeUsage]] = {}

    def observe(self, node_id: str, model: str, sample: AuditSample) -> AuditVerdict | None:
        """Count one answer of ``node_id`` for ``model``; a verdict when its share is now
        far above its peers' (its sums then start over)."""
        p, key = self.policy, (model, node_id)
        mine = self.usage.pop(key, None)
        if mine is None:
            mine = NodeUsage()
            self.by_model.setdefault(model, {})[node_id] = mine
            while len(self.usage) >= max(1, p.max_entries):
                self._drop(next(iter(self.usage)))
        self.usage[key] = mine  # (the most recently answered: last)
        mine.add(sample)
        if mine.requests >= max(2, p.window):
            mine.halve()
        if mine.requests < p.min_requests or mine.requests % max(1, p.check_every):
            return None
        verdict = self.verdict(node_id, model)
        if verdict is not None:
            self.by_model[model][node_id] = self.usage[key] = NodeUsage()  # fresh evidence
        return verdict

    def verdict(self, node_id: str, model: str) -> AuditVerdict | None:
        """The node's verdict as its sums stand: ``None`` without enough answers of its own
        or enough peers, or within :attr:`AuditPolicy.factor` of their median."""
        p = self.policy
        nodes = self.by_model.get(model, {})
        mine = nodes.get(node_id)
        if mine is None or mine.requests < p.min_requests:
            return None
        peers = [u for n, u in nodes.items() if n != node_id and u.requests >= p.min_requests]
        if len(peers) < max(1, p.min_peers):
            return None
        for kind in KINDS:
            share = mine.share(kind)
            theirs = [s for s in (u.share(kind) for u in peers) if s is not None]
            if share is None or len(theirs) < max(1, p.min_peers):
                continue
            mid = median(theirs)
            if share > p.factor * mid:
                return AuditVerdict(node_id, model, kind, share, mid, len(theirs), mine.requests)
        return None

    def forget(self, node_id: str, model: str | None = None) -> None:
        """Drop the node's sums (for ``model``, or all)."""
        for key in [k for k in self.usage if k[1] == node_id and model in (None, k[0])]:
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        self.usage.pop(key, None)
        nodes = self.by_model.get(key[0])
        if nodes is not None:
            nodes.pop(key[1], None)
            if not nodes:
                del self.by_model[key[0]]

    def view(self) -> list[dict[str, object]]:
        """Each (node, model)'s answers and shares, and its peers' median shares (the
        admin's listing), by model then node."""
        out: list[dict[str, object]] = []
        p = self.policy
        for model in sorted(self.by_model):
            nodes = self.by_model[model]
            for node_id in sorted(nodes):
                u = nodes[node_id]
                row: dict[str, object] = {
                    "node_id": node_id,
                    "model": model,
                    "requests": u.requests,
                }
                peers = [
                    v for n, v in nodes.items() if n != node_id and v.requests >= p.min_requests
                ]
                for kind in KINDS:
                    share = u.share(kind)
                    theirs = [s for s in (v.share(kind) for v in peers) if s is not None]
                    row[f"{kind}_share"] = None if share is None else round(share, 4)
                    row[f"peers_{kind}_share"] = round(median(theirs), 4) if theirs else None
                row["peers"] = len(peers)
                out.append(row)
        return out
