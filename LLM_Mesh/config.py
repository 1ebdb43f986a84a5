"""Settings: the one place that reads the environment.

The CLI builds one :class:`Settings` per process (``Settings.from_env()`` plus
its flags) and passes it down. Nothing else in the package reads ``os.environ``, but for
``MeshClient`` (a library too): constructed without ``stream_max_s`` it reads
``LLM_MESH_STREAM_MAX_S`` itself (the CLI passes the Settings' value, checked here).

| setting              | env                      | default                      |
|----------------------|--------------------------|------------------------------|
| home                 | LLM_MESH_HOME            | ~/.llm-mesh                  |
| registry_url         | LLM_MESH_REGISTRY_URL    | http://127.0.0.1:8800 (``URL,URL,...``: several replicas, tried in turn; ``registry_urls`` holds them all) |
| database_url         | LLM_MESH_DATABASE_URL    | sqlite+aiosqlite:///HOME/registry.db |
| heartbeat_interval_s | LLM_MESH_HEARTBEAT_S     | 10                           |
| missed_heartbeats    | LLM_MESH_MISSED_HEARTBEATS | 3                          |
| health_check_interval_s | LLM_MESH_HEALTH_CHECK_S | 300                         |
| request_timeout_s    | LLM_MESH_REQUEST_TIMEOUT_S | 120                        |
| stream_min_rate      | LLM_MESH_STREAM_MIN_RATE | 0.25 (tokens, i.e. events with output (text; an empty or role-only delta counts for nothing), a second: after its first token and the grace a node's stream must average at least this, else it is cut off as broken; per node: with ``k`` requests in flight on it (every replica's), each is held to 1/``k`` of it, ``k`` at most its declared slots and 8; 0: no floor; ``core/stream_guard.py``) |
| stream_grace_s       | LLM_MESH_STREAM_GRACE_S  | 60 (seconds after a stream's first token before that floor counts) |
| node_shutdown_s      | LLM_MESH_NODE_SHUTDOWN_S | 12 (a node's SIGTERM → exit: drain, goodbye, close; ``core/shutdown.py``) |
| node_forget_s        | LLM_MESH_NODE_FORGET_S   | 86400 (a node quiet this long, gone, revoked or silent, leaves the registry's memory and every listing (its stored row, key and revocation stay; it registers again to come back); never less than the heartbeat expiry + 600: ``registry/node_forget.py``) |
| previous_key_window_s | LLM_MESH_PREVIOUS_KEY_WINDOW_S | 900 (a registry key's rotation: beat tokens made under ``registry.key.previous`` are taken this many seconds after the rotation began at this replica, ``registry.key.previous.since``, then no longer; more than 0, at most 86400 (1 day); none at all where that stamp cannot be kept: ``core/previous_window.py``, docs/deploy.md "Rotating ``registry.key``") |
| registry_shutdown_s  | LLM_MESH_REGISTRY_SHUTDOWN_S | 80 (the registry's SIGTERM/SIGINT → exit at most: past it, one WARNING naming what is stuck, exit status 70; 0: no bound; ``registry/stop_watchdog.py``) |
| sdk_retry_window_s   | LLM_MESH_SDK_RETRY_WINDOW_S | 60 (a keyed request of OpenAI's SDK without an id of its own: its retry, same key, path and body bytes, within this many seconds of its first attempt's end waits for, replays (a completed stream too; on a lone SQLite registry across a restart: ``registry/lone_idempotency.py``) or is refused as that attempt's repeat instead of running and being paid again; 0: off; ``core/sdk_retry.py``) |
| max_attempts         | LLM_MESH_MAX_ATTEMPTS    | 3 (attempts a node may have worked on; 1 to 16) |
| max_failovers        | LLM_MESH_MAX_FAILOVERS   | 10 (more nodes after refused connections / 429) |
| allow_private_nodes  | LLM_MESH_ALLOW_PRIVATE_NODES | false (nodes must resolve to global addresses) |
| private_node_origins | (flag only)              | () origins allowed private anyway (`up`'s own node) |
| allow_loopback_nodes | (flag only)              | false (true: nodes on 127.0.0.0/8 and ::1 too, nothing else private; `up --allow-local-nodes`, `registry serve --allow-loopback-nodes`) |
| local_mesh           | LLM_MESH_LOCAL_MESH (the CLI's; `up`/`demo` set it) | "" (`up` or `demo`: that command started this registry; its refusals say what to run) |
| max_mesh_body_bytes  | LLM_MESH_MAX_MESH_BODY_BYTES | 1 MiB (``/mesh`` request bodies; larger: 413) |
| admin_key            | LLM_MESH_ADMIN_KEY       | none: the one in HOME/admin.key (made at first start) |
| operator_token       | LLM_MESH_OPERATOR_TOKEN  | none (a node's credential to register) |
| limits.max_body_bytes | LLM_MESH_MAX_BODY_BYTES | 1048576 (1 MiB; 413 above) |
| limits.max_json_depth | LLM_MESH_MAX_JSON_DEPTH | 32 (nesting of arrays/objects) |
| limits.max_json_containers | LLM_MESH_MAX_JSON_CONTAINERS | 20000 (arrays and objects in a body) |
| limits.max_messages  | LLM_MESH_MAX_MESSAGES    | 512                          |
| limits.max_content_chars | LLM_MESH_MAX_CONTENT_CHARS | 524288 (message content or prompt) |
| limits.max_n         | LLM_MESH_MAX_N           | 1                            |
| limits.max_stop      | LLM_MESH_MAX_STOP        | 4 (stop sequences)           |
| limits.max_stop_chars | LLM_MESH_MAX_STOP_CHARS | 256 (one stop sequence)      |
| ledger_origin        | LLM_MESH_LEDGER_ORIGIN   | llm-mesh.local/ledger (checkpoints' origin and key name) |
| accept_ledger_rollback | LLM_MESH_ACCEPT_LEDGER_ROLLBACK | false (true: start on a store whose ledger is behind the checkpoint kept in ``$LLM_MESH_HOME/ledger.checkpoint``, a restored older backup, forking the published ledger: ``registry/ledger_mark.py``; ``registry serve --accept-ledger-rollback``) |
| ledger_checkpoint_every | LLM_MESH_LEDGER_CHECKPOINT_EVERY | 1000 (entries between signed checkpoints) |
| ledger_checkpoint_interval_s | LLM_MESH_LEDGER_CHECKPOINT_S | 60 (at most this long before new entries are signed) |
| ledger_witnesses     | LLM_MESH_LEDGER_WITNESSES | none (witness key texts, ``,``-separated, whose cosignatures ``POST /v1/ledger/cosignatures`` accepts; none: it accepts none) |
| ledger_witness_urls  | LLM_MESH_LEDGER_WITNESS_URLS | none (C2SP tlog-witness submission prefixes, ``,``-separated, each new checkpoint is pushed to: ``POST <url>/add-checkpoint``, so not ending in ``/add-checkpoint``; needs ``LLM_MESH_LEDGER_WITNESSES``, whose keys' cosignatures alone are kept) |
| anonymous_rpm        | LLM_MESH_ANONYMOUS_RPM   | 60 requests a minute per client address without a key (0: no limit) |
| anonymous_in_flight  | LLM_MESH_ANONYMOUS_IN_FLIGHT | 4 requests in flight at once per client address without a key, per gateway process, or for every replica together with a Redis URL (where ``anonymous_rpm`` applies; loopback not counted; past it 429 with ``Retry-After``; 0: no bound; ``core/anonymous_inflight.py``) |
| anonymous_share      | LLM_MESH_ANONYMOUS_SHARE | 0.75 (the share of a model's slots, as this gateway process sees its routable nodes, that requests without a key may hold together (with ``redis_url``: at every replica together), rounded down and never the last slot: the rest stay free for keyed requests; where ``anonymous_rpm`` applies; past it 429 ``saturated`` or the opt-in wait; 1: every slot; ``core/anonymous_share.py``) |
| anonymous_total_rpm  | LLM_MESH_ANONYMOUS_TOTAL_RPM | 6000 requests a minute without a key from every address together, per gateway process (where ``anonymous_rpm`` applies; past it 429 with ``Retry-After``; 0: no total) |
| ledger_read_rows_per_min | LLM_MESH_LEDGER_READ_ROWS_PER_MIN | 1000000 (ledger entries and checkpoints the public ledger reads, ``GET /v1/ledger``, its export and ``/v1/ledger/checkpoints``, serve one client address a minute, an IPv6 one per /64; past it 429 with ``Retry-After``; 0: no limit) |
| ledger_read_rows_total_per_min | LLM_MESH_LEDGER_READ_ROWS_TOTAL_PER_MIN | 3000000 (the same rows served to every address together, per gateway process; past it 429 with ``Retry-After``; 0: no total) |
| earnings_reads_per_min | LLM_MESH_EARNINGS_READS_PER_MIN | 60 (``GET /v1/earnings`` and the dashboard's operator view together, a minute per operator token, per gateway process; past it 429 with ``Retry-After``, nothing read; 0: no limit; ``registry/valid_rates.py``) |
| stream_max_s         | LLM_MESH_STREAM_MAX_S    | 1800 (the longest a ``MeshClient`` stream, ``ask --stream``, the seed API's, runs, from its request to its last event; then ``AnswerRefused``) |
| api_key              | LLM_MESH_API_KEY         | none: clients (``ask``, the seed API) send no key, as anonymous |

The request limits (``LLM_Mesh.core.limits``) apply at the gateway and, with the
same variables, on a node's own ``/v1`` endpoints.
| canary_share         | LLM_MESH_CANARY_SHARE    | 0.01 (at most this share of a node's capacity goes to canary probes) |
| canary_min_interval_s | LLM_MESH_CANARY_MIN_INTERVAL_S | 3600 (at least one probe per node and model this often, on average: probe times are a Poisson process) |
| canary_prompts       | LLM_MESH_CANARY_PROMPTS  | none (a file of the admin's private canary prompts: a JSON array of strings, or one JSON string a line; read at start, an invalid one stops it; ``core/canary_prompts.py``) |
| canary_prompts_mode  | LLM_MESH_CANARY_PROMPTS_MODE | mix (``mix``: probes draw from the public pool and the file's prompts together; ``replace``: from the file's alone) |
| canary_fresh_share   | LLM_MESH_CANARY_FRESH_SHARE | 0.5 (the share of probes whose prompt is made fresh, never sent before: ``core/canary_fresh.py``; each is a reference the verifier answers anew; the rest draw from the pool; 0: every probe from the pool) |
| trust_threshold      | LLM_MESH_TRUST_THRESHOLD | 0.6 (``trusted_only`` routes to nodes scoring at least this) |
| require_tls          | LLM_MESH_REQUIRE_TLS     | false (true: the registry refuses http:// nodes) |
| allow_plain_http_nodes | LLM_MESH_ALLOW_PLAIN_HTTP_NODES | false (the registry refuses http:// nodes off loopback, ``plain_http_remote``: prompts would cross the network in clear; true: a private network or lab accepts them; not with ``require_tls``) |
| settlement           | LLM_MESH_SETTLEMENT      | true (false: no reservation, no 402, nothing paid; cost still reported) |
| settle_lease         | LLM_MESH_SETTLE_LEASE    | 4 (a gateway reserves a payer's balance as a lease of this many estimates and admits requests against it in memory, one write a request; 0: one reservation a request; 0 to 64) |
| settle_lease_idle_s  | LLM_MESH_SETTLE_LEASE_IDLE_S | 1.0 (a lease unused this long goes back to the payer's available balance) |
| network_fee_bps      | LLM_MESH_NETWORK_FEE_BPS | 500 (5 % of each paid part goes to ``network``; 0 to 10000) |
| pool_daily_budget    | LLM_MESH_POOL_DAILY_BUDGET | 100000000 µNT (100 NetworkTokens: the community pool is topped up to it each UTC day; at most 10^13) |
| registry_ca          | LLM_MESH_REGISTRY_CA     | none: the system's CAs verify an https registry |
| allow_http_first_use | LLM_MESH_ALLOW_HTTP_FIRST_USE | false (true: a node with no pinned gateway key starts with a plain-http registry on another machine, and pins the first answer's key: ``core/first_use.py``; node.toml ``allow_http_first_use`` too) |
| reward_rate          | LLM_MESH_REWARD_RATE     | 100000 micro-NetworkTokens per hour of healthy availability (0: no uptime rewards) |
| reward_period_s      | LLM_MESH_REWARD_PERIOD_S | 3600 (uptime rewards are settled once per period, aligned to the epoch) |
| reward_simulated     | LLM_MESH_REWARD_SIMULATED | false (a node whose every model is simulated earns no uptime reward; true: it does, for test meshes) |
| reward_uptime_nodes  | LLM_MESH_REWARD_UPTIME_NODES | 4 (an operator's nodes are credited at most this many nodes' worth of uptime per period, split over them: `core/rewards.operator_uptime_ms`; 0: no cap) |
| reward_start_close_s | LLM_MESH_REWARD_START_CLOSE_S | 30 (a registry's start waits at most this long for the due reward period's close, then logs a WARNING and serves, the close going on beside serving: ``RewardTask.close_first``; 0: no wait) |
| request_log_keep_days | LLM_MESH_REQUEST_LOG_KEEP_DAYS | 30 (the store's request log keeps this many days, pruned hourly; 0: forever; never less than the rewards read) |
| settlement_keep_days | LLM_MESH_SETTLEMENT_KEEP_DAYS | 400 (settled or void ``settlements`` rows are kept this many days after settling, pruned hourly; 0: forever; never less than 367, the longest earnings window + 1; the ledger is never pruned) |
| cut_receipt_keep_days | LLM_MESH_CUT_RECEIPT_KEEP_DAYS | 400 (a cut stream's receipt nobody received, ``GET /v1/receipts/{hash}``, is kept this many days after it was made, pruned hourly; 0: forever; its hash stays in the ledger) |
| unpaid_keep_days     | LLM_MESH_UNPAID_KEEP_DAYS | 400 (a node's count of requests served unpaid, ``unpaid`` in ``GET /v1/earnings``, is kept this many days after its UTC day, pruned hourly; 0: forever; never less than 367, the longest earnings window + 1) |
| node_keep_days       | LLM_MESH_NODE_KEEP_DAYS  | 30 (a ``nodes`` row quiet this many days (forgotten) is deleted, pruned hourly; 0: forever; never less than the forget bound + 1 day nor the rewards read; its key, revocation, quarantine, ledger, settlements and request log stay: ``registry/node_retention.py``) |
| metrics              | LLM_MESH_METRICS         | true (``GET /metrics`` on registry and node; false: no route, no counting) |
| metrics_public       | LLM_MESH_METRICS_PUBLIC  | false (``/metrics``: loopback or the metrics token only) |
| metrics_token        | LLM_MESH_METRICS_TOKEN   | none (a bearer token that may read ``/metrics`` from anywhere) |
| trusted_peers        | LLM_MESH_TRUSTED_PEERS   | none (a node's: addresses or CIDR blocks, ``,``-separated, not counted against its per-peer connection cap, as loopback and its registries' resolved addresses are not: a load-balanced registry's egress addresses; node.toml ``trusted_peers``, ``--trusted-peers`` add to it: ``core/peer_exempt.py``) |
| stream_interval_s    | LLM_MESH_STREAM_INTERVAL_S | none: node.toml ``stream_interval_s``, else 0.04 (a llama-cpp node's: after the first token, at most one write of tokens per this many seconds, 0 to 1; 0: every token alone; ``node/engines/base.py``) |
| local_names          | LLM_MESH_LOCAL_NAMES     | none (host names, ``,``-separated, that loopback-only endpoints accept in ``Host`` besides loopback addresses and ``localhost``: ``core/browser_origin.py``) |
| log_format           | LLM_MESH_LOG_FORMAT      | text (``text`` or ``json``: JSON lines) |
| log_requests         | LLM_MESH_LOG_REQUESTS    | true (one INFO line per request: id, node, model, status, timings) |
| redis_url            | LLM_MESH_REDIS_URL       | none: rate-limit buckets per process (set: shared by every replica) |
| malloc_arena_max     | LLM_MESH_MALLOC_ARENA_MAX | 2 (glibc malloc arenas of ``registry serve`` / ``node start``; 0: glibc's default; an operator's own ``MALLOC_ARENA_MAX`` wins) |
| malloc_trim_s        | LLM_MESH_MALLOC_TRIM_S   | 60 (whole seconds between ``malloc_trim`` calls in those servers; 0: never) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from LLM_Mesh.config_env import (
    LOG_FORMATS as LOG_FORMATS,  # (its home before)
)
from LLM_Mesh.config_env import (
    env_bool,
    env_float,
    env_int,
    env_limit,
    env_limits,
    env_path,
    env_seconds_up_to,
    env_stream_interval,
    env_whole,
    env_witness_urls,
    env_witnesses,
    log_format,
)
from LLM_Mesh.core.anonymous_inflight import DEFAULT_ANONYMOUS_IN_FLIGHT
from LLM_Mesh.core.anonymous_share import DEFAULT_ANONYMOUS_SHARE, parse_share
from LLM_Mesh.core.browser_origin import parse_local_names
from LLM_Mesh.core.canary_fresh import DEFAULT_FRESH_SHARE, parse_fresh_share
from LLM_Mesh.core.canary_prompts import parse_prompts_mode
from LLM_Mesh.core.failover import MAX_ATTEMPTS_TOP as MAX_ATTEMPTS_TOP  # (core/failover.py)
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.peer_exempt import parse_trusted_peers
from LLM_Mesh.core.previous_window import PREVIOUS_KEY_TOKENS_S, PREVIOUS_KEY_TOKENS_TOP_S
from LLM_Mesh.core.registry_urls import registry_url_list
from LLM_Mesh.core.registry_urls import split_urls as split_urls  # (its home before)
from LLM_Mesh.core.retention import (
    CUT_RECEIPT_DAYS,
    REQUEST_LOG_DAYS,
    SETTLEMENT_DAYS,
    UNPAID_DAYS,
)
from LLM_Mesh.core.rewards import START_CLOSE_S, UPTIME_NODES
from LLM_Mesh.core.sdk_retry import DEFAULT_WINDOW_S
from LLM_Mesh.core.shutdown import DEFAULT_REGISTRY_SHUTDOWN_S, DEFAULT_SHUTDOWN_S
from LLM_Mesh.core.stream_guard import DEFAULT_GRACE_S, DEFAULT_MIN_RATE
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.database_url import normalize_database_url as normalize_database_url

DEFAULT_REGISTRY_HOST = "127.0.0.1"
DEFAULT_REGISTRY_PORT = 8800
DEFAULT_NODE_PORT = 8801
DEFAULT_REGISTRY_URL = f"http://{DEFAULT_REGISTRY_HOST}:{DEFAULT_REGISTRY_PORT}"
DEFAULT_MODEL = "gemma-3-270m"
#: the node engines (``--engine``, node.toml ``engine``)
ENGINES = ("llama-cpp", "openai", "sim")
DEFAULT_MESH_BODY_BYTES = 1024 * 1024  # registrations and heartbeats are a few KiB
DEFAULT_ANONYMOUS_RPM = 60
# ledger rows a minute per client address from the public ledger reads (ledger_api.py):
# 10 whole exports of 100,000; a page of 10,000 costs the gateway ~0.2 s of CPU, an
# export of 100,000 ~0.7 s (2026-12-03, the shared 2-core box)
DEFAULT_LEDGER_READ_ROWS = 1_000_000
# ... and to every address together, per process: three addresses' whole budgets (~21 s of
# one core's CPU a minute at the figures above); many addresses (an IPv6 /48 is 65,536 /64s)
# add up to no more than this
DEFAULT_LEDGER_READ_ROWS_TOTAL = 3_000_000
# GET /v1/earnings and the operator view a minute per operator token (registry/valid_rates.py)
DEFAULT_EARNINGS_READS_PER_MIN = 60
# anonymous ``/v1`` requests a minute from every address together, per process: a hundred
# addresses at their whole 60; ~100 a second, a tenth of what one gateway process relayed
# in docs/benchmarks.md (probe_gateway_concurrent: 639-1,072 req/s, the shared 2-core box)
DEFAULT_ANONYMOUS_TOTAL_RPM = 6000
DEFAULT_REWARD_RATE = 100_000  # micro-NetworkTokens per hour of healthy availability
DEFAULT_REWARD_PERIOD_S = 3600
DEFAULT_NETWORK_FEE_BPS = 500  # 5 %
DEFAULT_POOL_DAILY_BUDGET = 100_000_000  # micro-NetworkTokens: 100 NetworkTokens a day
# the community pool's daily budget, µNT: 10^13 (ten million NetworkTokens a day; a century of
# top-ups stays far inside the ledger's 64-bit amounts) (found 2026-12-04: a budget past
# 2^63 failed every top-up)
POOL_DAILY_BUDGET_TOP = 10**13


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path.home() / ".llm-mesh")
    # the first registry URL; ``registry_urls``: all of them, in the order tried
    registry_url: str = DEFAULT_REGISTRY_URL
    registry_urls: tuple[str, ...] = ()
    # its source: "--registry", "LLM_MESH_REGISTRY_URL", node.toml's path, "" (default)
    registry_source: str = ""
    database_url: str | None = None
    heartbeat_interval_s: float = 10.0
    missed_heartbeats: int = 3
    health_check_interval_s: float = 300.0
    request_timeout_s: float = 120.0
    stream_min_rate: float = DEFAULT_MIN_RATE  # a broken stream's floor (stream_guard; 0: none)
    stream_grace_s: float = DEFAULT_GRACE_S
    # a node's whole shutdown, SIGTERM to exit (core/shutdown.py; `llm-mesh up` kills at 15)
    node_shutdown_s: float = DEFAULT_SHUTDOWN_S
    # the registry's whole stop, signal to exit, when a step is stuck (core/shutdown.py; 0: none)
    registry_shutdown_s: float = DEFAULT_REGISTRY_SHUTDOWN_S
    node_forget_s: float = 86400.0  # quiet this long: out of memory (registry/node_forget.py)
    # a rotation's previous key's beat tokens are taken this long (core/previous_window.py)
    previous_key_window_s: float = PREVIOUS_KEY_TOKENS_S
    sdk_retry_window_s: float = DEFAULT_WINDOW_S  # a keyed SDK retry's window (sdk_retry.py)
    connect_timeout_s: float = 3.0
    max_attempts: int = 3
    max_failovers: int = 10
    # no SSRF: node URLs must resolve to global addresses unless allowed here
    allow_private_nodes: bool = False
    private_node_origins: tuple[str, ...] = ()
    allow_loopback_nodes: bool = False  # 127.0.0.0/8 and ::1 only (`up --allow-local-nodes`)
    local_mesh: str = ""  # "up"/"demo": that command started this registry (refusals say so)
    max_mesh_body_bytes: int = DEFAULT_MESH_BODY_BYTES
    admin_key: str | None = field(default=None, repr=False)
    operator_token: str | None = field(default=None, repr=False)
    # request limits, refused before any node is called (core/limits.py)
    limits: RequestLimits = field(default_factory=RequestLimits)
    ledger_origin: str = "llm-mesh.local/ledger"
    ledger_checkpoint_every: int = 1000
    accept_ledger_rollback: bool = False  # serve a store behind ledger.checkpoint (ledger_mark)
    ledger_checkpoint_interval_s: float = 60.0
    # witnesses whose checkpoint cosignatures the registry accepts and serves (their
    # ``vkey`` texts, core/witness.py; checked in from_env); none: it accepts none
    ledger_witnesses: tuple[str, ...] = ()
    # C2SP tlog-witness submission prefixes each new checkpoint is pushed to
    # (registry/witness_push.py); none: the registry pushes nothing
    ledger_witness_urls: tuple[str, ...] = ()
    # requests a minute per client address without an API key; None: no limit (``up``)
    anonymous_rpm: int | None = DEFAULT_ANONYMOUS_RPM
    # ... from every address together, in this process (only where anonymous_rpm applies);
    # None: no total
    anonymous_total_rpm: int | None = DEFAULT_ANONYMOUS_TOTAL_RPM
    # ... in flight at once per address (only where anonymous_rpm applies); None: no bound
    anonymous_in_flight: int | None = DEFAULT_ANONYMOUS_IN_FLIGHT
    # ... the share of a model's slots they may hold together (same; 1: every slot)
    anonymous_share: float = DEFAULT_ANONYMOUS_SHARE
    # ledger rows a minute per client address from the public ledger reads; None: no limit
    ledger_read_rows_per_min: int | None = DEFAULT_LEDGER_READ_ROWS
    # ... to every address together, in this process; None: no total
    ledger_read_rows_total_per_min: int | None = DEFAULT_LEDGER_READ_ROWS_TOTAL
    # earnings reads a minute per operator token (valid_rates.py); None: no limit
    earnings_reads_per_min: int | None = DEFAULT_EARNINGS_READS_PER_MIN
    api_key: str | None = field(default=None, repr=False)  # what clients send (``ask``)
    # the longest a client's stream runs (``MeshClient(stream_max_s=)``); None: its default
    stream_max_s: float | None = None
    # transport (TLS): refuse plain-HTTP nodes; the CA file trusted for an https registry
    require_tls: bool = False
    # plain-HTTP nodes off loopback too (core/tls.py: refused by default, prompts in clear)
    allow_plain_http_nodes: bool = False
    registry_ca: str | None = None
    # a node may learn its gateway key over plain http from another host (core/first_use.py)
    allow_http_first_use: bool = False
    # uptime rewards (core/rewards.py): micro-NetworkTokens per hour of healthy
    # availability (0: none), settled once per period of this many seconds
    reward_rate: int = DEFAULT_REWARD_RATE
    reward_period_s: int = DEFAULT_REWARD_PERIOD_S
    reward_simulated: bool = False  # a node serving only simulated models earns uptime
    # nodes' worth of uptime one operator is credited per period, however many node ids it
    # holds (core/rewards.operator_uptime_ms; 0: no cap)
    reward_uptime_nodes: int = UPTIME_NODES
    reward_start_close_s: float = START_CLOSE_S  # the start's wait for the due close (0: none)
    # retention (0: kept forever; core/retention.py, registry/retention.py): the request log,
    # settled or void settlements (after settling), cut receipts, the counts of requests
    # served unpaid, quiet ``nodes`` rows
    request_log_keep_days: int = REQUEST_LOG_DAYS
    settlement_keep_days: int = SETTLEMENT_DAYS
    cut_receipt_keep_days: int = CUT_RECEIPT_DAYS
    unpaid_keep_days: int = UNPAID_DAYS  # the counts of requests served unpaid, a row a day
    node_keep_days: int = 30
    # observability (docs/operations.md): Prometheus /metrics and the per-request log line
    metrics: bool = True
    metrics_public: bool = False
    metrics_token: str | None = field(default=None, repr=False)
    # names that loopback-only endpoints accept in ``Host`` besides loopback addresses and
    # localhost (core/browser_origin.py: DNS rebinding); lower case, no trailing dot
    local_names: tuple[str, ...] = ()
    # a node's peers not counted against its per-peer cap (core/peer_exempt.py): CIDR texts
    trusted_peers: tuple[str, ...] = ()
    stream_interval_s: float | None = None  # a node's, when node.toml does not say
    log_format: str = "text"  # "text" | "json" (JSON lines)
    log_requests: bool = True
    # shared rate-limit buckets for replicas (registry/redis_limits.py); None: per process
    redis_url: str | None = field(default=None, repr=False)
    # the C heap of a long-running server (LLM_Mesh/heap.py): arenas capped, pages trimmed
    malloc_arena_max: int = 2
    malloc_trim_s: float = 60.0

    def __post_init__(self) -> None:
        urls = split_urls(self.registry_url) or (DEFAULT_REGISTRY_URL,)
        if len(urls) > 1 or not self.registry_urls or self.registry_urls[0] != urls[0]:
            object.__setattr__(self, "registry_urls", urls)  # a list given, or a new first URL
        object.__setattr__(self, "registry_url", urls[0])

    # quality control (registry/canary.py, core/trust.py)
    canary_share: float = 0.01
    canary_min_interval_s: float = 3600.0
    canary_prompts: Path | None = None  # the admin's private prompt file (core/canary_prompts)
    canary_prompts_mode: str = "mix"  # "mix" (with the public pool) | "replace"
    canary_fresh_share: float = DEFAULT_FRESH_SHARE  # probes with a fresh prompt (canary_fresh)
    trust_threshold: float = 0.6
    # settlement (docs/ARCHITECTURE.md, Settlement): reserve, 402, pay operators, fees
    settlement: bool = True
    settle_lease: int = 4  # estimates a reservation lease leaves free (0: off; settle_lease.py)
    settle_lease_idle_s: float = 1.0  # an unused lease goes back after this long
    network_fee_bps: int = DEFAULT_NETWORK_FEE_BPS
    pool_daily_budget: int = DEFAULT_POOL_DAILY_BUDGET  # micro-NetworkTokens per UTC day

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("LLM_MESH_HOME") or Path.home() / ".llm-mesh").expanduser()
        given = (env.get("LLM_MESH_REGISTRY_URL") or "").strip()  # none: the default
        s = cls(
            home=home,
            registry_url=",".join(registry_url_list(given, "LLM_MESH_REGISTRY_URL")),
            registry_source="LLM_MESH_REGISTRY_URL" if given else "",
            database_url=env.get("LLM_MESH_DATABASE_URL") or None,
            heartbeat_interval_s=env_float(env, "LLM_MESH_HEARTBEAT_S", 10.0),
            missed_heartbeats=env_int(env, "LLM_MESH_MISSED_HEARTBEATS", 3),
            health_check_interval_s=env_float(env, "LLM_MESH_HEALTH_CHECK_S", 300.0),
            request_timeout_s=env_float(env, "LLM_MESH_REQUEST_TIMEOUT_S", 120.0),
            stream_min_rate=env_float(
                env, "LLM_MESH_STREAM_MIN_RATE", DEFAULT_MIN_RATE, zero_is_off=True
            ),
            stream_grace_s=env_float(
                env, "LLM_MESH_STREAM_GRACE_S", DEFAULT_GRACE_S, zero_is_off=True
            ),
            node_shutdown_s=env_float(env, "LLM_MESH_NODE_SHUTDOWN_S", DEFAULT_SHUTDOWN_S),
            node_forget_s=env_float(env, "LLM_MESH_NODE_FORGET_S", 86400.0),
            previous_key_window_s=env_seconds_up_to(
                env,
                "LLM_MESH_PREVIOUS_KEY_WINDOW_S",
                PREVIOUS_KEY_TOKENS_S,
                top=PREVIOUS_KEY_TOKENS_TOP_S,
            ),
            registry_shutdown_s=env_float(
                env, "LLM_MESH_REGISTRY_SHUTDOWN_S", DEFAULT_REGISTRY_SHUTDOWN_S, zero_is_off=True
            ),
            sdk_retry_window_s=env_float(
                env, "LLM_MESH_SDK_RETRY_WINDOW_S", DEFAULT_WINDOW_S, zero_is_off=True
            ),
            max_attempts=env_int(env, "LLM_MESH_MAX_ATTEMPTS", 3, top=MAX_ATTEMPTS_TOP),
            max_failovers=env_int(env, "LLM_MESH_MAX_FAILOVERS", 10),
            allow_private_nodes=env_bool(env, "LLM_MESH_ALLOW_PRIVATE_NODES", False),
            max_mesh_body_bytes=env_int(
                env, "LLM_MESH_MAX_MESH_BODY_BYTES", DEFAULT_MESH_BODY_BYTES
            ),
            admin_key=(env.get("LLM_MESH_ADMIN_KEY") or "").strip() or None,
            operator_token=(env.get("LLM_MESH_OPERATOR_TOKEN") or "").strip() or None,
            limits=env_limits(env),
            ledger_origin=(env.get("LLM_MESH_LEDGER_ORIGIN") or "").strip()
            or "llm-mesh.local/ledger",
            ledger_checkpoint_every=env_int(env, "LLM_MESH_LEDGER_CHECKPOINT_EVERY", 1000),
            accept_ledger_rollback=env_bool(env, "LLM_MESH_ACCEPT_LEDGER_ROLLBACK", False),
            ledger_checkpoint_interval_s=env_float(env, "LLM_MESH_LEDGER_CHECKPOINT_S", 60.0),
            ledger_witnesses=env_witnesses(env),
            ledger_witness_urls=env_witness_urls(env),
            anonymous_rpm=env_limit(env, "LLM_MESH_ANONYMOUS_RPM", DEFAULT_ANONYMOUS_RPM),
            anonymous_total_rpm=env_limit(
                env, "LLM_MESH_ANONYMOUS_TOTAL_RPM", DEFAULT_ANONYMOUS_TOTAL_RPM
            ),
            anonymous_in_flight=env_limit(
                env, "LLM_MESH_ANONYMOUS_IN_FLIGHT", DEFAULT_ANONYMOUS_IN_FLIGHT
            ),
            anonymous_share=parse_share(env.get("LLM_MESH_ANONYMOUS_SHARE")),
            ledger_read_rows_per_min=env_limit(
                env, "LLM_MESH_LEDGER_READ_ROWS_PER_MIN", DEFAULT_LEDGER_READ_ROWS
            ),
            ledger_read_rows_total_per_min=env_limit(
                env, "LLM_MESH_LEDGER_READ_ROWS_TOTAL_PER_MIN", DEFAULT_LEDGER_READ_ROWS_TOTAL
            ),
            earnings_reads_per_min=env_limit(
                env, "LLM_MESH_EARNINGS_READS_PER_MIN", DEFAULT_EARNINGS_READS_PER_MIN
            ),
            api_key=(env.get("LLM_MESH_API_KEY") or "").strip() or None,
            stream_max_s=env_float(env, "LLM_MESH_STREAM_MAX_S", 0.0) or None,
            require_tls=env_bool(env, "LLM_MESH_REQUIRE_TLS", False),
            allow_plain_http_nodes=env_bool(env, "LLM_MESH_ALLOW_PLAIN_HTTP_NODES", False),
            registry_ca=(env.get("LLM_MESH_REGISTRY_CA") or "").strip() or None,
            allow_http_first_use=env_bool(env, "LLM_MESH_ALLOW_HTTP_FIRST_USE", False),
            reward_rate=env_whole(env, "LLM_MESH_REWARD_RATE", DEFAULT_REWARD_RATE),
            reward_period_s=env_int(env, "LLM_MESH_REWARD_PERIOD_S", DEFAULT_REWARD_PERIOD_S),
            reward_simulated=env_bool(env, "LLM_MESH_REWARD_SIMULATED", False),
            reward_uptime_nodes=env_whole(env, "LLM_MESH_REWARD_UPTIME_NODES", UPTIME_NODES),
            reward_start_close_s=env_float(
                env, "LLM_MESH_REWARD_START_CLOSE_S", START_CLOSE_S, zero_is_off=True
            ),
            request_log_keep_days=env_whole(
                env, "LLM_MESH_REQUEST_LOG_KEEP_DAYS", REQUEST_LOG_DAYS
            ),
            settlement_keep_days=env_whole(env, "LLM_MESH_SETTLEMENT_KEEP_DAYS", SETTLEMENT_DAYS),
            cut_receipt_keep_days=env_whole(
                env, "LLM_MESH_CUT_RECEIPT_KEEP_DAYS", CUT_RECEIPT_DAYS
            ),
            unpaid_keep_days=env_whole(env, "LLM_MESH_UNPAID_KEEP_DAYS", UNPAID_DAYS),
            node_keep_days=env_whole(env, "LLM_MESH_NODE_KEEP_DAYS", 30),
            metrics=env_bool(env, "LLM_MESH_METRICS", True),
            metrics_public=env_bool(env, "LLM_MESH_METRICS_PUBLIC", False),
            metrics_token=(env.get("LLM_MESH_METRICS_TOKEN") or "").strip() or None,
            local_names=parse_local_names(env.get("LLM_MESH_LOCAL_NAMES") or ""),
            trusted_peers=tuple(
                str(n) for n in parse_trusted_peers(env.get("LLM_MESH_TRUSTED_PEERS") or "")
            ),
            stream_interval_s=env_stream_interval(env),
            log_format=log_format(env.get("LLM_MESH_LOG_FORMAT")),
            log_requests=env_bool(env, "LLM_MESH_LOG_REQUESTS", True),
            redis_url=(env.get("LLM_MESH_REDIS_URL") or "").strip() or None,
            # glibc read an operator's MALLOC_ARENA_MAX at start: leave it be
            malloc_arena_max=0
            if (env.get("MALLOC_ARENA_MAX") or "").strip()
            else env_whole(env, "LLM_MESH_MALLOC_ARENA_MAX", 2),
            malloc_trim_s=float(env_whole(env, "LLM_MESH_MALLOC_TRIM_S", 60)),
            canary_share=env_float(env, "LLM_MESH_CANARY_SHARE", 0.01),
            canary_min_interval_s=env_float(env, "LLM_MESH_CANARY_MIN_INTERVAL_S", 3600.0),
            canary_prompts=env_path(env.get("LLM_MESH_CANARY_PROMPTS")),
            canary_prompts_mode=parse_prompts_mode(env.get("LLM_MESH_CANARY_PROMPTS_MODE")),
            canary_fresh_share=parse_fresh_share(env.get("LLM_MESH_CANARY_FRESH_SHARE")),
            trust_threshold=env_float(env, "LLM_MESH_TRUST_THRESHOLD", 0.6),
            settlement=env_bool(env, "LLM_MESH_SETTLEMENT", True),
            settle_lease=env_whole(env, "LLM_MESH_SETTLE_LEASE", 4, top=64),
            settle_lease_idle_s=env_float(env, "LLM_MESH_SETTLE_LEASE_IDLE_S", 1.0),
            network_fee_bps=env_whole(
                env, "LLM_MESH_NETWORK_FEE_BPS", DEFAULT_NETWORK_FEE_BPS, top=10_000
            ),
            pool_daily_budget=env_whole(
                env,
                "LLM_MESH_POOL_DAILY_BUDGET",
                DEFAULT_POOL_DAILY_BUDGET,
                top=POOL_DAILY_BUDGET_TOP,
            ),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(clean.get("registry_url"), str):  # a flag's list replaces the env's
            clean["registry_urls"] = registry_url_list(clean["registry_url"], "--registry")
            clean["registry_url"] = ",".join(clean["registry_urls"])
        if clean.get("anonymous_rpm") == 0:  # a flag's 0: no limit
            clean["anonymous_rpm"] = None
        if "log_format" in clean:
            clean["log_format"] = log_format(str(clean["log_format"]))
        out = replace(s, **clean) if clean else s
        if out.database_url:  # a path or a typo: said now, not as SQLAlchemy's traceback
            normalize_database_url(out.database_url)
        return out

    @property
    def effective_database_url(self) -> str:
        """The store's URL: ``database_url`` or a SQLite file in ``home``."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.home / 'registry.db'}"

    @property
    def node_transport(self) -> NodeTransport:
        """The registry's transport rule for node URLs (``core/tls.py``)."""
        return NodeTransport.naming(
            self.require_tls, self.allow_plain_http_nodes, self.private_node_origins
        )

    def check_node_transport(self) -> None:
        """``ValueError`` in words for a registry told both to require TLS of every node and
        to accept plain-HTTP nodes off loopback (``registry serve`` checks it at start)."""
        if self.require_tls and self.allow_plain_http_nodes:
            raise ValueError(
                "--require-tls (LLM_MESH_REQUIRE_TLS) refuses every plain-http node, "
                "--allow-plain-http-nodes (LLM_MESH_ALLOW_PLAIN_HTTP_NODES) accepts them on "
                "other machines: use one of them, not both (without either, nodes on other "
                "machines must serve https and nodes on this machine may serve http)"
            )

    @property
    def heartbeat_expiry_s(self) -> float:
        """A node that has not sent a heartbeat for this long leaves routing."""
        return self.heartbeat_interval_s * self.missed_heartbeats
