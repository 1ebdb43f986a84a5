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
(Σ priced ÷ Σ cap, for the completion and for the prompt) with its peers' share **over the
same time windows**. A node whose share is more than :attr:`AuditPolicy.factor` times its
peers', over at least :attr:`AuditPolicy.min_requests` answers in windows shared with them,
gets an :class:`AuditVerdict` (the registry quarantines it and holds its earnings as a
failed probe does: ``registry/usage_audit.py``). A node stating a token a byte is at a share
of 1.0 (its every count at the cap); the real gemma-3-270m node's honest answers at 0.19
(Russian) to 0.40 (Japanese), 0.265 for a mix of languages, code and digits, digits alone
0.59; its prompts 0.16-0.23, digits 0.54 (``benchmarks/bench_usage_audit.py``,
docs/security.md). The share of the cap, not tokens a byte, is compared: the cap's
per-choice and per-message slack makes a short answer or prompt weigh as a long one, so
the traffic's mix of lengths moves it less.

**Same windows.** The traffic's mix changes with the hour (a batch job of digits at night,
one timezone's language by day): a node online only at some hours sees those hours' mix,
and against peers' sums over the whole day an honest node would be judged for *when* it
was online (digits are 2.2 times the mix). So time is cut into windows of
:attr:`AuditPolicy.bucket_s` seconds, the same for a model's nodes, and only the current
one is kept: per node its sums in it. When a window closes (the model's first answer in a
later one), each node with answers in it that has :attr:`~AuditPolicy.min_peers` peers
with :attr:`~AuditPolicy.bucket_min` answers there (a node with fewer is no one's peer in
it, but is judged on its own: else a liar answering 2 in any 10 minutes never was) adds to
its evidence its own sums
of the window and, for each kind, its cap × the median of those peers' shares *in that
window* (the peers' share weighted by the node's own traffic, window by window): its
reference share is Σ(median × cap) ÷ Σ cap over the windows it shared. A window it shared
with no peer adds nothing: a node online alone (a model with a single node, or at hours
no peer answers) is not judged, there is no evidence. The window still open counts as if
it closed now, so a verdict does not wait for it.

What a verdict needs (no verdict otherwise): :attr:`~AuditPolicy.min_requests` answers of
the node in shared windows since its last verdict, and as many of its peers in those
windows together. The median is the peers' own: a majority of the model's nodes inflating
alike sets it (they are not flagged; an honest node is never flagged by them either, only
a share *above* the median is).

Bounded: a node's evidence and its sums in the current window a (node, model), at most
:attr:`~AuditPolicy.max_entries` of them (the least recently answered forgotten first), the
windows closed are not kept; past :attr:`~AuditPolicy.window` answers a node's evidence (and
its sums in one window) are halved, so its recent traffic weighs most (a node that starts
inflating after a long honest record is not hidden by it). A verdict starts the node's
evidence over: a second verdict needs fresh evidence. Pure: no I/O; the caller gives the
time (``now``, seconds of a monotonic clock).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_POLICY", "KINDS", "AuditPolicy", "AuditSample", "AuditVerdict", "Evidence",
    "NodeAudit", "NodeUsage", "UsageAudit", "context_tier", "judge", "median_without",
    "view_row", "window_add", "window_table",
]  # fmt: skip


@dataclass(frozen=True)
class AuditPolicy:
    """When the audit speaks (docs/security.md: the thresholds and their measurement)."""

    min_requests: int = 200
    """Answers a node needs in windows shared with its peers since its last verdict (and
    its peers together in those windows) before its share is compared: the mix of a node's
    traffic averages out over them."""
    factor: float = 2.0
    """How far above the peers' median share in the same windows a node is flagged. The
    real engine's share of one kind of text against another spans 3-4 times at the
    extremes (digits 0.59 or code 0.38 against Russian 0.19 or Hindi 0.10), but the audit
    counts only traffic the gateway routed, spread by load over the model's nodes online
    at the time: in a window a node's mix is its peers'. One kind alone against peers with
    the mix is at most 1.5 times (Japanese), digits 2.2; a token a byte is 3.8-4.2 times the
    mix."""
    min_peers: int = 1
    """Other nodes of the model with :attr:`bucket_min` answers in a window that make it a
    window shared (evidence)."""
    bucket_s: float = 600.0
    """The windows' length, seconds: a node is compared with its peers over the same ones
    (short beside the hours a mix lasts: a batch job, a timezone's day)."""
    bucket_min: int = 3
    """Answers a node (and a peer) needs in a window to count in it (a share of fewer is
    mostly the lengths' noise). A model's nodes answering less (under one every 3 minutes
    each) share no window: not audited."""
    window: int = 4096
    """Past this many answers a node's evidence is halved (recent traffic weighs most)."""
    max_entries: int = 65_536
    """(node, model) pairs kept; the least recently answered is forgotten past it."""
    check_every: int = 8
    """A node's share is compared once every this many of its answers (a median of the
    peers a time, not an answer)."""


DEFAULT_POLICY = AuditPolicy()
KINDS = ("completion", "prompt")


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
    """A node's sums for a model in one window (halved past the policy's window)."""

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

    def sums(self, kind: str) -> tuple[int, int]:
        """(Σ priced, Σ cap) of ``kind`` (``completion`` | ``prompt``)."""
        if kind == "completion":
            return self.completion, self.completion_cap
        return self.prompt, self.prompt_cap

    def share(self, kind: str) -> float | None:
        """Σ priced ÷ Σ cap of ``kind``; ``None``: no cap yet."""
        priced, cap = self.sums(kind)
        return priced / cap if cap > 0 else None


@dataclass
class Evidence:
    """A node's answers in windows shared with peers: per kind its Σ priced, Σ cap and
    Σ (the peers' median share in the window × its cap there)."""

    requests: int = 0
    peer_requests: int = 0
    peers: int = 0  # in the last window shared
    priced: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    cap: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    ref: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    def merged(self, other: Evidence) -> Evidence:
        return Evidence(
            self.requests + other.requests,
            self.peer_requests + other.peer_requests,
            other.peers or self.peers,
            {k: self.priced[k] + other.priced[k] for k in KINDS},
            {k: self.cap[k] + other.cap[k] for k in KINDS},
            {k: self.ref[k] + other.ref[k] for k in KINDS},
        )

    def halve(self) -> None:
        self.requests //= 2
        self.peer_requests //= 2
        for d in (self.priced, self.cap, self.ref):
            for k in KINDS:
                d[k] /= 2

    def share(self, kind: str) -> float | None:
        return self.priced[kind] / self.cap[kind] if self.cap[kind] > 0 else None

    def peers_share(self, kind: str) -> float | None:
        """The peers' median share, window by window, weighted by the node's caps."""
        return self.ref[kind] / self.cap[kind] if self.cap[kind] > 0 else None


@dataclass
class NodeAudit:
    """A node's state for a model: its evidence and its sums in the model's open window."""

    evidence: Evidence = field(default_factory=Evidence)
    current: NodeUsage = field(default_factory=NodeUsage)

    @property
    def requests(self) -> int:
        """Its answers counted so far: in shared windows closed, and in the open one (an
        upper bound of its evidence: the open window may not be shared)."""
        return self.evidence.requests + self.current.requests


@dataclass(frozen=True)
class AuditVerdict:
    """A node's share of its caps far above its peers' median over the same windows."""

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
            f"{self.peers_median:.2f} in the same time windows"
        )


@dataclass(frozen=True)
class _Window:
    """The open window's nodes that count in it (``UsageAudit._table``)."""

    counted: int
    requests: int
    shares: dict[str, list[float]]


def median_without(values: list[float], value: float) -> float:
    """The median of sorted ``values`` less one occurrence of ``value`` (one of them; at
    least two values)."""
    i = bisect_left(values, value)
    m = len(values) - 1

    def at(j: int) -> float:  # the j-th of the values less the i-th
        return values[j if j < i else j + 1]

    return at(m // 2) if m % 2 else (at(m // 2 - 1) + at(m // 2)) / 2


def context_tier(need: int, contexts: Iterable[int]) -> int:
    """The nodes a request of ``need`` tokens (the prompt's least + ``max_tokens``) could go
    to, given a model's online nodes' declared ``contexts`` (0: none declared): 0 when it
    fits every one, else the smallest declared context it fits (the nodes declaring at
    least that one took it; -1: none). A request that only the larger contexts could take
    is compared among them only: else a user could steer digits onto the one honest node
    of a larger context (``max_tokens`` above its peers') and frame it, and a colluding
    id declaring a tiny context would have such requests left out of the audit."""
    smallest, tier = 0, -1
    for ctx in contexts:
        if ctx <= 0:
            continue
        smallest = ctx if not smallest else min(smallest, ctx)
        if ctx >= need and (tier < 0 or ctx < tier):
            tier = ctx
    return 0 if not smallest or need <= smallest else tier


def _median(values: list[float]) -> float:
    """The median of sorted ``values`` (at least one)."""
    m = len(values)
    return values[m // 2] if m % 2 else (values[m // 2 - 1] + values[m // 2]) / 2


def window_table(usages: Iterable[NodeUsage], policy: AuditPolicy) -> _Window:
    """One window's nodes with :attr:`~AuditPolicy.bucket_min` answers in it: their count,
    their answers and each kind's shares, sorted (once a window: a node's peers' median is
    then found without a list of its peers, O(log n))."""
    need = max(1, policy.bucket_min)
    counted = [u for u in usages if u.requests >= need]
    shares = {
        kind: sorted(s for s in (u.share(kind) for u in counted) if s is not None) for kind in KINDS
    }
    return _Window(len(counted), sum(u.requests for u in counted), shares)


def window_add(mine: NodeUsage, t: _Window, policy: AuditPolicy) -> Evidence | None:
    """A node's evidence from one window (its sums ``mine``, the window's :func:`window_table`
    ``t``): ``None`` unless it and :attr:`~AuditPolicy.min_peers` peers have
    :attr:`~AuditPolicy.bucket_min` answers in it."""
    p = policy
    if mine.requests < 1:
        return None
    # a node under bucket_min in the window is no one's peer there, but its own answers
    # are judged against the peers counted (else a liar answering 2 in any 10 minutes
    # was never judged; found 2026-12-05, attack31b)
    counted = mine.requests >= max(1, p.bucket_min)
    peers = t.counted - counted  # (it is among them when counted)
    if peers < max(1, p.min_peers):
        return None
    add = Evidence(mine.requests, t.requests - mine.requests, peers)
    for kind in KINDS:
        priced, cap = mine.sums(kind)
        share, all_ = mine.share(kind), t.shares[kind]
        if share is None or len(all_) - counted < max(1, p.min_peers):
            continue
        add.priced[kind], add.cap[kind] = float(priced), float(cap)
        theirs = median_without(all_, share) if counted else _median(all_)
        add.ref[kind] = theirs * cap
    return add


def judge(
    node_id: str, model: str, ev: Evidence | None, policy: AuditPolicy
) -> AuditVerdict | None:
    """The node's verdict on its evidence ``ev``: ``None`` without enough answers of its
    own and its peers' in shared windows, or within :attr:`AuditPolicy.factor` of their
    median."""
    p = policy
    if ev is None or ev.requests < p.min_requests or ev.peer_requests < p.min_requests:
        return None
    for kind in KINDS:
        share, theirs = ev.share(kind), ev.peers_share(kind)
        if share is None or theirs is None:
            continue
        if share > p.factor * theirs:
            return AuditVerdict(node_id, model, kind, share, theirs, ev.peers, ev.requests)
    return None


class UsageAudit:
    """See the module docstring."""

    def __init__(self, policy: AuditPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        # (model, node id) -> state, least recently answered first; each model's nodes;
        # each model's open window (its index: now // bucket_s)
        self.usage: dict[tuple[str, str], NodeAudit] = {}
        self.by_model: dict[str, dict[str, NodeAudit]] = {}
        self.bucket: dict[str, int] = {}

    def observe(
        self, node_id: str, model: str, sample: AuditSample, now: float = 0.0
    ) -> AuditVerdict | None:
        """Count one answer of ``node_id`` for ``model`` at ``now`` (seconds, monotonic; a
        caller that gives none has one window for ever); a verdict when its share is now
        far above its peers' over the same windows (its evidence then starts over)."""
        p, key = self.policy, (model, node_id)
        self._advance(model, now)
        mine = self.usage.pop(key, None)
        if mine is None:
            mine = NodeAudit()
            while len(self.usage) >= max(1, p.max_entries):
                self._drop(next(iter(self.usage)))
            self.by_model.setdefault(model, {})[node_id] = mine
            self.bucket.setdefault(model, self._index(now))
        self.usage[key] = mine  # (the most recently answered: last)
        mine.current.add(sample)
        if mine.current.requests >= max(2, p.window):
            mine.current.halve()
        if mine.requests < p.min_requests or mine.requests % max(1, p.check_every):
            return None
        verdict = self.verdict(node_id, model)
        if verdict is not None:
            self.by_model[model][node_id] = self.usage[key] = NodeAudit()  # fresh evidence
        return verdict

    def _index(self, now: float) -> int:
        t = now / max(1e-9, self.policy.bucket_s)
        return int(t) if math.isfinite(t) else 0

    def _advance(self, model: str, now: float) -> None:
        """Close the model's open window when ``now`` is in a later one: each node's part of
        it into its evidence, the sums of the window dropped."""
        index, open_ = self._index(now), self.bucket.get(model)
        if open_ is None or index <= open_:
            return  # (a clock that went back: still the open window)
        self.bucket[model] = index
        nodes = self.by_model.get(model, {})
        table = self._table(nodes)
        adds = {n: self._shared(n, nodes, table) for n in nodes}
        for n, u in nodes.items():
            add = adds[n]
            if add is not None:
                u.evidence = u.evidence.merged(add)
                if u.evidence.requests >= max(2, self.policy.window):
                    u.evidence.halve()
            u.current = NodeUsage()

    def _table(self, nodes: dict[str, NodeAudit]) -> _Window:
        return window_table((u.current for u in nodes.values()), self.policy)

    def _shared(
        self, node_id: str, nodes: dict[str, NodeAudit], table: _Window | None = None
    ) -> Evidence | None:
        mine = nodes[node_id].current
        t = self._table(nodes) if table is None else table
        return window_add(mine, t, self.policy)

    def evidence(self, node_id: str, model: str, table: _Window | None = None) -> Evidence | None:
        """The node's evidence as it stands: the windows closed and the open one (``table``:
        the open window's, when the caller has it)."""
        nodes = self.by_model.get(model, {})
        mine = nodes.get(node_id)
        if mine is None:
            return None
        add = self._shared(node_id, nodes, table)
        return mine.evidence if add is None else mine.evidence.merged(add)

    def verdict(self, node_id: str, model: str) -> AuditVerdict | None:
        """The node's verdict as its evidence stands: ``None`` without enough answers of its
        own and its peers' in shared windows, or within :attr:`AuditPolicy.factor` of their
        median."""
        return judge(node_id, model, self.evidence(node_id, model), self.policy)

    def forget(self, node_id: str, model: str | None = None) -> None:
        """Drop the node's state (for ``model``, or all)."""
        for key in [k for k in self.usage if k[1] == node_id and model in (None, k[0])]:
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        self.usage.pop(key, None)
        nodes = self.by_model.get(key[0])
        if nodes is not None:
            nodes.pop(key[1], None)
            if not nodes:
                del self.by_model[key[0]]
                self.bucket.pop(key[0], None)

    def view(self) -> list[dict[str, object]]:
        """Each (node, model)'s answers in shared windows, its shares and its peers' median
        shares over the same windows (the admin's listing), by model then node."""
        out: list[dict[str, object]] = []
        for model in sorted(self.by_model):
            nodes = self.by_model[model]
            table = self._table(nodes)  # once a model (found 2026-12-05, attack31b: once a
            for node_id in sorted(nodes):  # node, 2.1 s for 2,000 nodes on the loop)
                ev = self.evidence(node_id, model, table) or Evidence()
                out.append(view_row(node_id, model, ev, nodes[node_id].current.requests))
        return out


def view_row(node_id: str, model: str, ev: Evidence, open_requests: int) -> dict[str, object]:
    """One (node, model)'s row of the admin's listing: its evidence's counts and shares, its
    peers' median shares, and its answers in the window still open (``open_requests``)."""
    row: dict[str, object] = {
        "node_id": node_id,
        "model": model,
        "requests": ev.requests,
        "peer_requests": ev.peer_requests,
        "open_window_requests": open_requests,
    }
    for kind in KINDS:
        share, theirs = ev.share(kind), ev.peers_share(kind)
        row[f"{kind}_share"] = None if share is None else round(share, 4)
        row[f"peers_{kind}_share"] = None if theirs is None else round(theirs, 4)
    row["peers"] = ev.peers
    return row
