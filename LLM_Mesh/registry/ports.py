"""What the registry needs from its store: the records and the ``Store`` protocol.

The SQL store (``registry/store.py``) and the in-memory one (``registry/memory_store.py``) both
implement :class:`Store`; the registry codes against the protocol only. Timestamps are
timezone-aware UTC ``datetime`` values (wall clock), never monotonic seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from LLM_Mesh.core.rewards import ModelStats
from LLM_Mesh.core.store_heard import HeardRows
from LLM_Mesh.registry.ports_canary import CanaryStore

#: Outcomes that count against the node that served the request (its ``failures``);
#: ``"cancelled"`` (the client went away) does not.
FAILURE_OUTCOMES = frozenset({"error"})


@dataclass
class NodeRecord:
    """One registered node as stored (registration, state, last heartbeat, counters)."""

    node_id: str
    url: str
    region: str | None
    models: list[dict[str, Any]]
    hardware: dict[str, Any]
    max_concurrency: int
    max_queue: int
    version: str
    state: str
    registered_at: datetime
    last_heartbeat_at: datetime | None
    requests: int = 0
    failures: int = 0
    tokens_generated: int = 0
    # ms it was routable, summed heartbeat by heartbeat (core/rewards.heartbeat_credit_ms);
    # only grows: a re-registration never lowers it
    healthy_ms: int = 0
    # the TLS certificate pin its registration carried (migration 0017), so that every
    # replica calls it pinned: a fingerprint, "" for none (plain http, or https verified by
    # the CAs), None when the row does not tell (written before 0017 or by an older replica)
    tls_fingerprint: str | None = None
    # the signed ``keeps_no_prompts`` its registration declared (migration 0029), so that
    # every replica, and a restarted one, routes to it as it declared (core/prompt_keeping.py):
    # None when it declared nothing or the row does not tell (before 0029, an older replica)
    keeps_no_prompts: bool | None = None
    # its last heartbeat on the store's own clock, and its age on it when read (migration
    # 0033, core/store_heard.py; None: the row does not tell); written: the age the writer
    # tells (a registration: 0), the store stamps its clock less it (None: no stamp)
    heard_store_at: datetime | None = None
    heard_age_s: float | None = field(default=None, compare=False)


@dataclass
class RequestRecord:
    """One finished request (never the prompt or the answer text)."""

    request_id: str
    node_id: str | None
    model: str
    stream: bool
    outcome: str  # "ok" | "error" | "cancelled"
    error_code: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float | None
    ttft_ms: float | None
    cost: int  # micro-NetworkTokens charged (core/pricing.py)
    created_at: datetime


@dataclass
class OperatorRecord:
    """Someone who may register nodes; only the SHA-256 of their token is kept."""

    name: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    nodes: list[str] = field(default_factory=list)
    # its uptime cap, nodes' worth per period (0: none); None: ``reward_uptime_nodes``
    uptime_nodes: int | None = None


@dataclass
class NodeKeyRecord:
    """A node id's public key (base64url), operator, last accepted sequence number."""

    node_id: str
    public_key: str
    operator: str
    last_seq: int
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass
class ApiKeyRecord:
    """A client's API key: only the SHA-256 of the key is kept, with its limits and regions."""

    key_id: str
    key_hash: str
    created_at: datetime
    name: str | None = None
    rpm: int | None = None  # requests per minute; None: the gateway's default for keys
    tpm: int | None = None  # tokens per minute; None: no token limit
    avoid_regions: list[str] = field(default_factory=list)
    strict_regions: bool = False  # also avoid nodes of unknown region
    trusted_only: bool = False  # route only to trusted nodes (migration 0009)
    allow_prompt_keeping: bool = False  # also to nodes that may keep prompts (0028)
    revoked_at: datetime | None = None


@dataclass
class IdempotencyRecord:
    """A client request id as replicas share it (``idempotency_keys``)."""

    key_hash: str  # keyed hash (HMAC-SHA256 hex) of ``path scope id [digest]``
    owner: str  # the replica that runs (ran) it
    stream: bool
    state: str  # "running" | "done"
    created_at: datetime
    expires_at: datetime  # running: its deadline; done: end of the replay window
    status: int | None = None
    body: bytes | None = None
    headers: list[list[str]] | None = None
    media_type: str | None = None
    too_large: bool = False
    # one claim of the id (a random token, 0019): its end, push and release match it only
    claim: str | None = None


@dataclass
class ReplicaRecord:
    """A registry replica's liveness beat and its demand counters (``registry_replicas``)."""

    replica_id: str
    started_at: datetime
    seen_at: datetime
    version: str
    demand: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckRecord:
    """A node's last active health check as replicas share it (``node_checks``): its
    result, when it was made, since when the checks find the node so (the first check
    with this result; ``None``: a row written before migration 0016), and the last failed
    check's reason (failing only; bounded and printable: ``core/check_state.reason``)."""

    node_id: str
    ok: bool
    checked_at: datetime
    since: datetime | None = None
    why: str | None = None


class SeqResult(str, Enum):
    """What the store said to a signed node message's sequence number."""

    OK = "ok"  # accepted; it is now the last one seen
    STALE = "stale"  # not greater than the last one seen (a replay)
    REVOKED = "revoked"  # the node key is revoked
    UNKNOWN = "unknown"  # no key for that node id
    KEY_MISMATCH = "key_mismatch"  # the id is held by another key
    OTHER_OPERATOR = "other_operator"  # the key is another operator's (registration only)


@dataclass(frozen=True)
class UsageWindowRow:
    """A node's sums for a model in one window of the usage audit (``bucket``: the window's
    index, wall-clock seconds // its length); written as additions (``core/usage_evidence.py``)."""

    model: str
    bucket: int
    node_id: str
    requests: int
    completion: int
    completion_cap: int
    prompt: int
    prompt_cap: int

    def sums(self) -> tuple[int, int, int, int, int]:
        return (self.requests, self.completion, self.completion_cap, self.prompt,
                self.prompt_cap)  # fmt: skip


@dataclass(frozen=True)
class UsageEvidenceRow:
    """A node's usage-audit evidence for a model (``core/usage_audit.Evidence``); ``epoch``
    moves at each write (a write is conditional on the epoch read: 0, no row)."""

    model: str
    node_id: str
    epoch: int
    requests: int
    peer_requests: int
    peers: int
    completion: float
    completion_cap: float
    completion_ref: float
    prompt: float
    prompt_cap: float
    prompt_ref: float
    bucket: int  # the window of its last write (the least recent pruned first)


@dataclass
class UsageAuditRows:
    """A model's usage-audit state: the windows folded up to ``folded`` (-1: none), the
    rows of windows after it, every node's evidence."""

    folded: int
    windows: list[UsageWindowRow]
    evidence: list[UsageEvidenceRow]


class UsageAuditStore(Protocol):
    """The usage audit's evidence, shared by replicas (``registry/store_usage_audit.py``,
    migration 0026; ``registry/usage_audit_sync.py``)."""

    async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
        """Add each row's sums to its (model, bucket, node)'s, in one transaction."""
        ...

    async def usage_audit_rows(self, model: str) -> UsageAuditRows:
        """The model's state."""
        ...

    async def fold_usage_audit(
        self,
        model: str,
        *,
        expect: int,
        through: int,
        rows: list[UsageEvidenceRow],
        seen: Sequence[UsageWindowRow],
    ) -> bool:
        """Fold the model's windows up to ``through`` (those after ``expect``, the folded
        mark read; ``seen``: their rows as read): each row written where its epoch is still
        the one read, the windows' rows dropped, what they gained since ``seen`` added to
        window ``through + 1``; ``False`` (nothing written) when another fold moved the
        mark first. No batch of the model's sums (``add_usage_windows``) interleaves."""
        ...

    async def claim_usage_verdict(self, model: str, node_id: str, epoch: int, bucket: int) -> bool:
        """A verdict on the node: its evidence started over and its windows' rows dropped,
        where its epoch is still ``epoch``; ``False``: another replica's verdict (or a fold)
        came first. Never inside a fold of the model (review33)."""
        ...

    async def prune_usage_audit(self, *, max_entries: int, before_bucket: int) -> int:
        """Drop windows' rows before ``before_bucket`` and the least recently written
        evidence past ``max_entries``; rows dropped."""
        ...


class AddressTaken(Exception):
    """Another live node's row holds the address (``holder``: its node id)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"the address is held by node {holder}")
        self.holder = holder


class Store(CanaryStore, Protocol):
    """Persistence of nodes and requests; every method is a coroutine."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def upsert_node(
        self,
        rec: NodeRecord,
        *,
        address_live_since: datetime | None = None,
        address_live_s: float | None = None,
    ) -> bool:
        """Insert or update the node ``rec.node_id``; ``False``, nothing written, when its
        node key is revoked (checked in the write: a revocation between the registration's
        key claim and this write does not put the node back in routing).

        With ``address_live_since``: :class:`AddressTaken`, nothing written, when another
        node's row at ``rec.url``'s address (``host:port``) is not offline and was heard
        from at or after it, checked in the write under a lock per address (found
        2026-12-05: two replicas each checked only their own table); with
        ``address_live_s`` too, a row with a valid store stamp (migration 0033) is heard
        from within that many seconds on the store's clock instead, whatever this
        replica's wall clock says (``core/store_heard.heard_within``; forget42)."""
        ...

    async def touch_heartbeat(
        self,
        node_id: str,
        at: datetime,
        state: str,
        *,
        credit_limit_s: float = 0.0,
        keyed_at: datetime | None = None,
    ) -> bool:
        """Record a heartbeat; ``False`` when the node is unknown or OFFLINE (it said
        goodbye or was revoked: its row is left as it is, only registering brings it back).
        ``keyed_at``: the node's last keyed request as its heartbeat said (None: not said),
        which other replicas read back with :meth:`ReplicaState.heartbeats_since`.

        In the same step the node's ``healthy_ms`` grows by the routable time the
        heartbeat vouches for (:func:`LLM_Mesh.core.rewards.heartbeat_credit_ms` with the
        stored state and last heartbeat, ``limit`` = ``credit_limit_s``; 0: nothing).
        """
        ...

    async def set_node_state(self, node_id: str, state: str) -> bool:
        """Set the node's state; ``False`` when the node is unknown."""
        ...

    async def get_node(self, node_id: str) -> NodeRecord | None:
        """The stored node, or ``None``."""
        ...

    async def list_nodes(self) -> list[NodeRecord]:
        """Every stored node."""
        ...

    async def record_requests(self, recs: list[RequestRecord]) -> None:
        """Append finished requests (one batch) and, in the same step, add them to their
        nodes' counters (``requests``, ``failures``: outcome in :data:`FAILURE_OUTCOMES`,
        ``tokens_generated``: completion tokens); a request of no node, or of a node with no
        record, only goes to the log. The counters are what a restart reads
        (``registry/snapshot.py``); pruning the log leaves them alone."""
        ...

    async def request_totals(
        self, since: datetime, until: datetime
    ) -> dict[str, dict[str, ModelStats]]:
        """Per node id and model, the requests recorded in ``[since, until)``: answered
        ``ok`` or failed (``error``), and over the ``ok`` ones the completion tokens and
        summed latency (what ``core/rewards.py`` compares nodes by)."""
        ...

    async def prune_requests(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` recorded requests created before ``before``; how many
        (the request log's retention, ``registry/retention.py``)."""
        ...

    # -- credentials (operators, node keys, the admin key) ---------------------------

    async def add_operator(
        self, name: str, token_hash: str, at: datetime, *, replace: bool = False
    ) -> bool:
        """Add an operator; ``False`` when the name exists (unless ``replace``: new token,
        not revoked any more; its revoked node keys stay revoked)."""
        ...

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        """The operator whose token hashes to ``token_hash`` (revoked ones too)."""
        ...

    async def list_operators(self) -> list[OperatorRecord]:
        """Every operator, by name, with the ids of its nodes."""
        ...

    async def operator_node_keys(self, name: str) -> dict[str, bool]:
        """The ids of the operator's nodes (its node keys, revoked ones too), sorted, each
        with whether its key is revoked: one indexed read, not :meth:`list_operators`' every
        key (attack44; ``GET /v1/earnings`` marks a revoked node's row, words44)."""
        ...

    async def set_operator_uptime_nodes(self, name: str, nodes: int | None) -> bool:
        """Set its uptime cap (nodes per period; 0: none; None: the setting); False: none."""
        ...

    async def revoke_operator(self, name: str, at: datetime) -> list[str] | None:
        """Revoke the operator and its node keys (nodes OFFLINE); their ids, or ``None``."""
        ...

    async def claim_node_key(
        self, node_id: str, public_key: str, operator: str, seq: int, at: datetime
    ) -> SeqResult:
        """A signed registration: record the key (first time) or check it, and take ``seq``
        if it is greater than the last one seen, in one step. A key is its first
        operator's: claimed with another operator's name it is refused
        (``OTHER_OPERATOR``) and nothing changes."""
        ...

    async def advance_node_seq(self, node_id: str, seq: int) -> SeqResult:
        """A signed message: take ``seq`` if greater than the last one seen and not revoked."""
        ...

    async def get_node_key(self, node_id: str) -> NodeKeyRecord | None: ...

    async def revoke_node(self, node_id: str, at: datetime) -> bool:
        """Revoke the node's key (its node goes OFFLINE); ``False`` when it has none."""
        ...

    async def revoked_nodes_since(self, at: datetime) -> list[str]:
        """Node ids revoked at or after ``at``."""
        ...

    async def get_admin_key_hash(self) -> str | None: ...

    # -- client API keys -----------------------------------------------------------------

    async def add_api_key(self, rec: ApiKeyRecord) -> bool:
        """Store a new key; ``False`` when its name (or id) is taken."""
        ...

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key whose secret hashes to ``key_hash`` (revoked ones too)."""
        ...

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        ...

    async def revoke_api_key(self, id_or_name: str, at: datetime) -> ApiKeyRecord | None:
        """Revoke the key with that id or name; the key, or ``None`` when none matches."""
        ...

    async def revoked_api_keys_since(self, at: datetime) -> list[str]:
        """Key ids revoked at or after ``at``."""
        ...

    async def set_admin_key_hash(self, key_hash: str, at: datetime, *, replace: bool) -> bool:
        """Store the admin key's hash; without ``replace`` only when none is stored yet."""
        ...


class ReplicaState(Protocol):
    """What several registry replicas on one store share beyond nodes and credentials
    (``registry/store_replicas.py``; in memory: ``registry/memory_replicas.py``)."""

    async def nodes_changed_since(self, at: datetime) -> list[NodeRecord]:
        """Nodes whose registration or state changed at or after ``at``, on the store's
        clock (``changed_at``: the store stamps it, ``store_rewards.changed_clock``)."""
        ...

    async def server_now(self) -> float | None:
        """The store's own clock (epoch seconds) where it has one apart from this host's
        (PostgreSQL's: one round trip), else ``None``: what rows with no store stamp are
        aged on where this replica's clock is behind it (``node_sync.py``)."""
        ...

    async def heartbeats_since(
        self, at: datetime, *, store_since: datetime | None = None, not_by: str | None = None
    ) -> HeardRows:
        """Nodes heard at or after ``at`` by the writers' clocks or ``store_since`` by the
        store's (rows that tell its stamp; None: not by it), with the store's clock read in
        that statement (``core/store_heard.py``); ``not_by``: not that replica's heartbeats."""
        ...

    async def claim_health_checks(
        self,
        node_ids: list[str],
        holder: str,
        now: datetime,
        until: datetime,
        *,
        alive_since: datetime | None = None,
    ) -> list[str]:
        """Take the check lease of each node whose lease ran out, or (``alive_since``)
        whose holder's replica row was not seen since then (a dead replica); the ids
        taken."""
        ...

    async def record_health_checks(self, results: list[CheckRecord]) -> None:
        """The checks' results, for every replica to apply. A result the row already has
        (``ok`` unchanged) keeps the row's ``since``: the first check with it, whichever
        replica made it; a passing result clears ``why``."""
        ...

    async def health_checks_since(self, at: datetime) -> list[CheckRecord]:
        """The last check of each node checked at or after ``at``."""
        ...

    async def beat_replica(self, rec: ReplicaRecord) -> None:
        """Insert or refresh a replica's row."""
        ...

    async def live_replicas(self, since: datetime) -> list[ReplicaRecord]:
        """Replicas seen at or after ``since``."""
        ...

    async def claim_request_key(
        self,
        key_hash: str,
        owner: str,
        stream: bool,
        now: datetime,
        expires_at: datetime,
        *,
        claim: str | None = None,
        supersede_done: bool = False,
    ) -> IdempotencyRecord | None:
        """``None``: claimed (named ``claim``), run it; else the row another run holds
        (unexpired). ``supersede_done``: a ``done`` row is taken over too (a first SDK
        attempt's implicit key, ``core/sdk_retry.py``): only a running one is returned."""
        ...

    async def get_request_key(self, key_hash: str) -> IdempotencyRecord | None: ...

    async def finish_request_key(self, rec: IdempotencyRecord) -> bool:
        """Mark the owner's running row done with its kept answer; ``False`` if not its row
        (nor, ``rec.claim`` set, that claim's)."""
        ...

    async def release_request_key(
        self, key_hash: str, owner: str, claim: str | None = None
    ) -> None:
        """Forget the owner's running row (the request ended in a retryable way); ``claim``
        set: only the row of that claim."""
        ...

    async def extend_request_key(self, key_hash: str, claim: str, expires_at: datetime) -> bool:
        """Push the running row of ``claim`` back to ``expires_at`` (a stream still open);
        ``False`` if it is not there."""
        ...

    async def purge_request_keys(self, now: datetime) -> int:
        """Delete expired rows; how many."""
        ...

    async def drop_replicas_before(self, before: datetime) -> int:
        """Delete rows of replicas not seen since ``before``; how many."""
        ...


class KeptRequestKeys(Protocol):
    """A lone registry's kept request keys (``idempotency_keys``; a SQLite store): its SDK
    attempts' ends, read again after a restart (``registry/lone_idempotency.py``)."""

    async def get_request_key(self, key_hash: str) -> IdempotencyRecord | None: ...

    async def keep_request_keys(self, records: list[IdempotencyRecord], now: datetime) -> None:
        """Write ``records`` (``done`` rows) in one transaction, over any row of their keys,
        and delete the rows expired at ``now``."""
        ...

    async def purge_request_keys(self, now: datetime) -> int:
        """Delete expired rows; how many."""
        ...
