"""The registry store's tables (SQLAlchemy Core), shared by the store and migrations.

``nodes``: one row per node ever registered (registration, state, last heartbeat, counters).
``requests``: one row per completed or failed request (node, model, tokens, latency, cost, outcome)
— never the prompt or the answer text. ``operators``: who may register nodes (the SHA-256 of their
token, never the token). ``node_keys``: each node id's Ed25519 public key, its operator, the last
sequence number accepted from it and when it was revoked. ``admin_key``: the SHA-256 of the store's
admin key (one row). The ledger (``registry/ledger.py``): ``ledger_entries`` (append-only transfers,
each a Merkle leaf), ``ledger_nodes`` (the hash of every complete subtree), ``ledger_head`` (one
row: size, frontier, last leaf hash and time; the lock appends take), ``ledger_checkpoints`` (signed
tree heads), ``ledger_keys`` (checkpoint signers' public keys) and ``ledger_cosignatures``
(witnesses' cosignatures of checkpoints, migration 0014). The migrations ``0004`` and ``0014`` add
triggers that refuse UPDATE and DELETE on the entries, nodes, checkpoints and cosignatures.
``api_keys`` (migration 0003): clients' API keys (the SHA-256 of the key, never the key), their
limits, avoided regions, when revoked. ``reward_periods`` (migration 0007): each node's closed
reward periods; with it ``nodes.healthy_ms``, the node's routable time (see the table's comment).

The quality-control tables (``canary_*``) are in ``tables_canary.py``, the metadata and
:class:`UTCDateTime` in ``tables_base.py``; both re-exported here.

Datetimes are timezone-aware UTC on every dialect (:class:`UTCDateTime`). The migrations in
``registry/migrations/versions`` must produce exactly this metadata;
``tests/registry/test_migrations.py`` checks it on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.sql.expression import false, text

from LLM_Mesh.core.check_state import MAX_WHY
from LLM_Mesh.registry.tables_base import NAMING_CONVENTION, UTCDateTime, metadata
from LLM_Mesh.registry.tables_canary import (
    canary_departures,
    canary_status,
    canary_verifier_models,
    canary_verifiers,
)

__all__ = [
    "NAMING_CONVENTION", "UTCDateTime", "admin_key", "api_keys", "balances", "canary_departures",
    "canary_status", "canary_verifier_models", "canary_verifiers", "idempotency_keys",
    "ledger_checkpoints", "ledger_cosignatures", "ledger_entries", "ledger_head", "ledger_keys",
    "ledger_nodes", "metadata", "node_checks", "node_keys", "nodes", "operators", "pool_days",
    "registry_replicas", "requests", "reward_periods", "settle_batches", "settle_holders",
    "settle_leases", "settlements", "usage_audit_evidence", "usage_audit_folds",
    "usage_audit_windows",
]  # fmt: skip


# BIGINT on PostgreSQL; plain INTEGER on SQLite (only ``INTEGER PRIMARY KEY`` is the rowid)
RequestId = BigInteger().with_variant(Integer(), "sqlite")

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("region", String(128), nullable=True),
    Column("models", JSON(), nullable=False),
    Column("hardware", JSON(), nullable=False),
    Column("max_concurrency", Integer(), nullable=False),
    Column("max_queue", Integer(), nullable=False),
    Column("version", String(128), nullable=False),
    Column("state", String(32), nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("last_heartbeat_at", UTCDateTime(), nullable=True),
    Column("requests", BigInteger(), nullable=False, server_default="0"),
    Column("failures", BigInteger(), nullable=False, server_default="0"),
    Column("tokens_generated", BigInteger(), nullable=False, server_default="0"),
    # migration 0007: ms the node was routable, summed heartbeat by heartbeat (only grows;
    # core/rewards.heartbeat_credit_ms); reward periods are cut from it (reward_periods)
    Column("healthy_ms", BigInteger(), nullable=False, server_default="0"),
    # migration 0008: when the registration or state last changed, on the store's clock
    Column("changed_at", UTCDateTime(), nullable=True),
    Column("heard_by", String(64), nullable=True),  # the replica that got the last heartbeat
    # migration 0017: the registration's TLS certificate pin ("" none), told only while
    # ``tls_at`` equals ``changed_at`` (a replica of an older version re-registering the
    # node moves ``changed_at`` and leaves these: store_replicas.node_from_row)
    Column("tls_fingerprint", String(128), nullable=True),
    Column("tls_at", UTCDateTime(), nullable=True),
    # migration 0023: ``host:port`` of ``url`` (core/liveness.address_text; NULL: written
    # before 0023 or by an older replica, or no address): registration reads only the rows
    # at its address, and the NULL ones, for a live node there (store.SqlStore._check_address)
    Column("address", String(2048), nullable=True),
    # migration 0025: the node's last keyed request as its last heartbeat said (NULL: not
    # said): every replica counts the places it keeps for keyed requests (node_sync.py)
    Column("keyed_at", UTCDateTime(), nullable=True),
    # migration 0029: the registration's signed ``keeps_no_prompts`` (NULL: not declared),
    # told only while ``keeps_at`` equals ``tls_at`` (a replica of an older version
    # re-registering the node moves ``tls_at`` and leaves these: store_replicas.node_from_row)
    Column("keeps_no_prompts", Boolean(), nullable=True),
    Column("keeps_at", UTCDateTime(), nullable=True),
    # migration 0033: the last heartbeat on the store's clock (core/store_heard.py)
    Column("heard_store_at", UTCDateTime(), nullable=True),
    Column("heard_store_of", UTCDateTime(), nullable=True),
    Index("ix_nodes_changed_at", "changed_at"),
    Index("ix_nodes_last_heartbeat_at", "last_heartbeat_at"),
    Index("ix_nodes_address", "address"),
    Index("ix_nodes_heard_store_at", "heard_store_at"),
)

requests = Table(
    "requests",
    metadata,
    Column("id", RequestId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("node_id", String(128), nullable=True),
    Column("model", String(256), nullable=False),
    Column("stream", Boolean(), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("error_code", String(128), nullable=True),
    Column("prompt_tokens", Integer(), nullable=False),
    Column("completion_tokens", Integer(), nullable=False),
    Column("latency_ms", Float(), nullable=True),
    Column("ttft_ms", Float(), nullable=True),
    Column("cost", BigInteger(), nullable=False),  # micro-NetworkTokens (migration 0006)
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_requests_request_id", "request_id"),
    Index("ix_requests_node_id", "node_id"),
    Index("ix_requests_created_at", "created_at"),
)

operators = Table(
    "operators",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # migration 0024: the admin's uptime cap for this operator, in nodes' worth per reward
    # period (``registry operators set --uptime-nodes``; 0: none); NULL: the registry's
    # ``reward_uptime_nodes`` (``registry/rewards.py``)
    Column("uptime_nodes", Integer(), nullable=True),
)

node_keys = Table(
    "node_keys",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("operator", String(128), nullable=False),
    Column("last_seq", BigInteger(), nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # migration 0020: the random token of the heartbeat batch that took ``last_seq`` (a
    # batch tried again after its answer was lost takes its own numbers again)
    Column("seq_batch", String(32), nullable=True),
    Index("ix_node_keys_operator", "operator"),
    Index("ix_node_keys_revoked_at", "revoked_at"),
)

admin_key = Table(
    "admin_key",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger(), primary_key=True, autoincrement=False),
    Column("time_us", BigInteger(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_account", String(128), nullable=False),
    Column("to_account", String(128), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("receipt_hash", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Index("ix_ledger_entries_request_id", "request_id"),
    Index("ix_ledger_entries_from_account", "from_account"),
    Index("ix_ledger_entries_to_account", "to_account"),
)

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    # index * 64 + level (registry/ledger_tree.node_key)
    Column("id", BigInteger(), primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("size", BigInteger(), nullable=False),
    Column("frontier", LargeBinary(), nullable=False),
    Column("last_leaf", LargeBinary(32), nullable=False),
    Column("last_time_us", BigInteger(), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("tree_size", BigInteger(), primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("time_us", BigInteger(), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("note", Text(), nullable=False),
)

# witnesses' cosignatures of checkpoints (migration 0014; registry/ledger.py): one line per
# (checkpoint size, witness key text), the first accepted kept; served after the note's own
ledger_cosignatures = Table(
    "ledger_cosignatures",
    metadata,
    Column("tree_size", BigInteger(), primary_key=True, autoincrement=False),
    Column("witness", String(256), primary_key=True),
    Column("time_s", BigInteger(), nullable=False),
    Column("line", Text(), nullable=False),
)

ledger_keys = Table(
    "ledger_keys",
    metadata,
    Column("public_key", String(64), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

#: Migration 0018: the ledger's secrets, made once by the first registry that needs one
#: and read by every replica; never published. ``account_key``: the HMAC key of the
#: operator, node and held accounts (``registry/ledger_accounts.py``).
ledger_secrets = Table(
    "ledger_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=True, unique=True),
    Column("rpm", Integer(), nullable=True),
    Column("tpm", Integer(), nullable=True),
    Column("avoid_regions", JSON(), nullable=False),
    Column("strict_regions", Boolean(), nullable=False),
    Column("trusted_only", Boolean(), nullable=False, server_default=false()),
    # migration 0028: its requests may go to nodes that may keep prompts (opt in)
    Column("allow_prompt_keeping", Boolean(), nullable=False, server_default=false()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_api_keys_revoked_at", "revoked_at"),
)


#: Migration 0005: one row per (request, node part) that is paid for. A request is written
#: ``pending`` (with the estimate reserved from the payer) before it is forwarded; then ``answered``
#: (the exact ``amount``/``fee`` of each part, written before the answer is released), then
#: ``settled`` (ledger entries written in the same transaction); or ``void`` (nothing paid).
#: ``part`` is 0 for the first node paid, 1, 2, ... for nodes that continued a stream; only part 0
#: carries the ``estimate``. Accounts are ledger accounts (``core/ledger_entry.py``): ``payer``
#: ``user:...`` or ``pool``, ``operator`` ``operator:...`` (or ``node:...`` for a node without one).
#: ``holder`` (0006): the gateway process that reserved it (``settle_holders``). The settlement
#: code: ``registry/settlement.py``.
settlements = Table(
    "settlements",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("part", Integer(), primary_key=True, autoincrement=False),
    Column("payer", String(128), nullable=False),
    Column("node_id", String(128), nullable=True),
    Column("operator", String(128), nullable=True),
    Column("model", String(256), nullable=False),
    Column("estimate", BigInteger(), nullable=False),
    Column("amount", BigInteger(), nullable=True),
    Column("fee", BigInteger(), nullable=True),
    Column("state", String(16), nullable=False),
    Column("receipt_hash", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("holder", String(64), nullable=True),
    Index("ix_settlements_state", "state"),  # 0021: no payer index (paid_ids reads a key range)
    Index("ix_settlements_operator", "operator"),
    # 0022: no holder index (recovery reads the in-flight rows by state)
    # 0012: the done-with rows by when they were settled (the retention's delete, retention.py)
    Index(
        "ix_settlements_done",
        "updated_at",
        postgresql_where=text("state IN ('settled', 'void')"),
        sqlite_where=text("state IN ('settled', 'void')"),
    ),
)

#: Migration 0006: every account's balance (``balance``: the ledger's credits less its
#: debits, kept by :meth:`~LLM_Mesh.registry.ledger.SqlLedger.append` in the same
#: transaction as the entries) and ``reserved``: what requests in flight hold (their
#: estimate while pending, their exact cost once answered, until settled or void).
#: ``available = balance - reserved`` is what a new request may reserve.
balances = Table(
    "balances",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("balance", BigInteger(), nullable=False),
    Column("reserved", BigInteger(), nullable=False),
)

#: Migration 0006: gateway processes holding reservations, and the database's time
#: (unix ms) of each one's last sign of life. A holder silent for longer than its
#: time-to-live is dead: its answered rows are settled, its pending ones voided.
settle_holders = Table(
    "settle_holders",
    metadata,
    Column("holder", String(64), primary_key=True),
    Column("beat_ms", BigInteger(), nullable=False),
)

#: Migration 0010: the batches of settlement's hot-path writes applied on PostgreSQL
#: (``registry/settle_db.py``, ``PgSettleDb``): each batch's id (random, the client's) and the rows
#: it returned (``results``: a JSON array of ``{idx, ok, bal, res}``), written in the batch's
#: transaction, so a batch sent again after a lost connection returns them instead of being applied
#: twice. Kept an hour (``settle_holders.py``, :func:`forget_batches`). Unused on SQLite.
settle_batches = Table(
    "settle_batches",
    metadata,
    Column("batch_id", Uuid(), primary_key=True),
    Column("results", JSON(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_settle_batches_created_at", "created_at"),
)

#: Migration 0015: a holder's lease on a payer's balance (``registry/settle_lease.py``): an
#: ``amount`` the holder reserved from the payer's ``balances`` row once, that admits its
#: requests in memory; an answer moves its total from the lease to its ``answered`` row.
#: A payer's ``reserved`` = pending estimates + answered totals + leases.
settle_leases = Table(
    "settle_leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("payer", String(128), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Index("ix_settle_leases_holder", "holder"),
)

#: Migration 0006: one row per UTC day on which the community pool was topped up to its
#: daily budget (``amount``: what the mint added, 0 when it was full already).
pool_days = Table(
    "pool_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("amount", BigInteger(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)


#: Migration 0007: one row per (node, reward period) closed (``registry/rewards.py``), written in
#: the same transaction as the period's ``reward`` ledger entries (the append's guard), so a node is
#: paid at most once per period by any number of registries. ``period_start`` is Unix seconds
#: (periods align to the epoch); ``healthy_ms`` the healthy time credited (cut to its operator's
#: share when its operator's nodes passed ``Settings.reward_uptime_nodes``: ``core/rewards.py``);
#: ``mark_ms`` is the node's ``healthy_ms`` counter as this close left it (the next close counts
#: from it); ``performance`` and ``success`` are the formula's factors in thousandths
#: (``core/rewards.py``); ``operator`` the ledger account paid (``None``: nobody, e.g. revoked);
#: ``amount`` in micro-NetworkTokens (0: no entry, ``entry_seq`` ``None``).
reward_periods = Table(
    "reward_periods",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("period_start", BigInteger(), primary_key=True, autoincrement=False),
    Column("period_s", Integer(), nullable=False),
    Column("operator", String(128), nullable=True),
    Column("healthy_ms", BigInteger(), nullable=False),
    Column("mark_ms", BigInteger(), nullable=False),
    Column("performance", Integer(), nullable=False),
    Column("success", Integer(), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("entry_seq", BigInteger(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_reward_periods_operator", "operator"),
    Index("ix_reward_periods_period_start", "period_start"),
)

#: Migration 0008 (replicas, ``registry/store_replicas.py``). ``idempotency_keys``: one row
#: per client request id (SHA-256 of ``path scope id``): the replica running it (``owner``),
#: ``running`` or ``done``, the kept answer (status, body, headers) or ``too_large``; a row
#: past ``expires_at`` is free to claim again. Since migration 0019 also ``claim``, the
#: token naming the claim (a release or end of an earlier claim never touches a later one).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("stream", Boolean(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status", Integer(), nullable=True),
    Column("body", LargeBinary(), nullable=True),
    Column("headers", JSON(), nullable=True),
    Column("media_type", String(128), nullable=True),
    Column("too_large", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # migration 0019: the claim's random token (its end, push and release match it)
    Column("claim", String(32), nullable=True),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

#: The active health pass's per-node lease (``holder`` until ``lease_until``) and the
#: last check's result, which every replica applies; since migration 0016 also since when
#: the checks find the node so and the last failed check's reason (``core/check_state.
#: reason``: printable, at most ``MAX_WHY`` characters), NULL in older rows.
node_checks = Table(
    "node_checks",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=False),
    Column("checked_at", UTCDateTime(), nullable=True),
    Column("ok", Boolean(), nullable=True),
    Column("since", UTCDateTime(), nullable=True),
    Column("why", String(MAX_WHY), nullable=True),
    Index("ix_node_checks_checked_at", "checked_at"),
)

#: Live registry replicas: each beats ``seen_at`` every second with its demand counters.
registry_replicas = Table(
    "registry_replicas",
    metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    Column("version", String(128), nullable=False),
    Column("demand", JSON(), nullable=False),
    Index("ix_registry_replicas_seen_at", "seen_at"),
)


#: The usage audit's evidence, shared by the replicas on one database and kept over a
#: restart (migration 0026; ``registry/store_usage_audit.py``, ``core/usage_evidence.py``):
#: per (model, window, node) the node's sums in the window (every replica adds its own),
#: per (model, node) its evidence, per model the last window folded into it. ``model`` is
#: the audit key (a model id, its context's suffix: 320 wide since migration 0027).
usage_audit_windows = Table(
    "usage_audit_windows",
    metadata,
    Column("model", String(320), primary_key=True),
    Column("bucket", BigInteger(), primary_key=True),
    Column("node_id", String(128), primary_key=True),
    Column("requests", BigInteger(), nullable=False),
    Column("completion", BigInteger(), nullable=False),
    Column("completion_cap", BigInteger(), nullable=False),
    Column("prompt", BigInteger(), nullable=False),
    Column("prompt_cap", BigInteger(), nullable=False),
)

usage_audit_evidence = Table(
    "usage_audit_evidence",
    metadata,
    Column("model", String(320), primary_key=True),
    Column("node_id", String(128), primary_key=True),
    Column("epoch", BigInteger(), nullable=False),
    Column("requests", BigInteger(), nullable=False),
    Column("peer_requests", BigInteger(), nullable=False),
    Column("peers", Integer(), nullable=False),
    Column("completion", Float(), nullable=False),
    Column("completion_cap", Float(), nullable=False),
    Column("completion_ref", Float(), nullable=False),
    Column("prompt", Float(), nullable=False),
    Column("prompt_cap", Float(), nullable=False),
    Column("prompt_ref", Float(), nullable=False),
    Column("bucket", BigInteger(), nullable=False),
    Index("ix_usage_audit_evidence_bucket", "bucket"),
)

usage_audit_folds = Table(
    "usage_audit_folds",
    metadata,
    Column("model", String(320), primary_key=True),
    Column("folded", BigInteger(), nullable=False),
)

#: Cut streams' receipts nobody received (0031, ``registry/store_cut_receipts.py``): the
#: receipt's JSON (counts, hashes, ids, amounts, signatures; no prompt or output text).
cut_receipts = Table(
    "cut_receipts",
    metadata,
    Column("receipt_hash", String(64), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("payer", String(128), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("receipt", Text(), nullable=False),
    Index("ix_cut_receipts_request_id", "request_id"),
    Index("ix_cut_receipts_created_at", "created_at"),  # the pruner's (0032)
)

unpaid_served = Table("unpaid_served", metadata,  # served unpaid (0035, store_unpaid.py)
    Column("node_id", String(128), primary_key=True), Column("day", String(10), primary_key=True),
    Column("model", String(320), primary_key=True), Column("reason", String(200), primary_key=True),
    Column("requests", BigInteger(), nullable=False))  # fmt: skip

#: One counter per store poll (``topic``: ``revocations``, ``api_keys``, ``quality``), moved by
#: SQLite triggers (migration 0013) in the transaction of every write the poll would read (a node
#: key's or an API key's ``revoked_at``, any canary row), so a poll of a SQLite store skips its
#: queries while its counter holds still, whatever else was committed (``SqlStore.poll_version``).
#: PostgreSQL has the table, unused: its polls run every interval.
poll_versions = Table(
    "poll_versions",
    metadata,
    Column("topic", String(32), primary_key=True),
    Column("version", BigInteger(), nullable=False, server_default="0"),
)
