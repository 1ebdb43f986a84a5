"""The registry process's live objects, held in ``app.state.runtime``.

One :class:`Runtime` per app: settings, the store, the node table (liveness),
the routing state (the one :class:`~LLM_Mesh.core.balancer.Router`), the node
authenticator (signed node messages, ``node_auth.py``), the gateway's signer
(``gateway_key.py``: every forwarded request is signed), the API key cache
(``api_keys.py``) and the clients' rate-limit buckets (``core/ratelimit.py``; shared in
Redis when ``redis_url`` is set), the idempotency cache (shared through the store by
replicas, ``shared_idempotency.py``), this replica's beat (``replicas.py``), the request writer and the one pooled outbound
:class:`~LLM_Mesh.registry.node_client.NodeClient` (set in the lifespan; tests
pass an ``httpx.AsyncClient`` with their own transport); the send stage's
:class:`~LLM_Mesh.core.failover.FailoverPolicy` from settings, and an optional
``observer`` that sees each request's failover decisions when it stops trying
nodes (tests compare them with the simulator's); ``metrics`` (``registry/metrics.py``,
``None`` when ``Settings.metrics`` is off) and ``telemetry`` (``registry/telemetry.py``:
a finished request's metrics and log line).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property

from starlette.requests import Request

from LLM_Mesh.config import MAX_ATTEMPTS_TOP, Settings
from LLM_Mesh.core.failover import Failover, FailoverPolicy
from LLM_Mesh.core.gateway_auth import GatewaySigner
from LLM_Mesh.core.priority_mix import TrafficMix
from LLM_Mesh.core.ratelimit import RateLimiter
from LLM_Mesh.core.receipt import ReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys
from LLM_Mesh.core.registry_identity import IdentityProver
from LLM_Mesh.core.revocation_proof import RevocationSigner
from LLM_Mesh.core.slot_wait import SlotWait
from LLM_Mesh.core.stream_guard import StreamFloor
from LLM_Mesh.errors import MeshError, StoreUnavailable
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.admin import AdminKeyMemo, NodeHomes
from LLM_Mesh.registry.api_keys import KeyCache
from LLM_Mesh.registry.beat_tokens import BeatTokens
from LLM_Mesh.registry.cut_receipts import CutReceiptWriter
from LLM_Mesh.registry.heartbeat_writes import HeartbeatWriter
from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.listing import ServedContexts
from LLM_Mesh.registry.metrics import GatewayMetrics
from LLM_Mesh.registry.node_auth import NodeAuthenticator
from LLM_Mesh.registry.node_client import AiohttpNodeClient, NodeClient
from LLM_Mesh.registry.node_listing import NodeListing
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.paid_ids import PaidIds
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.quality import Quality
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.redis_limits import RedisLimiter
from LLM_Mesh.registry.redis_shown import SharedShown
from LLM_Mesh.registry.replicas import ReplicaBeat
from LLM_Mesh.registry.request_log import RequestWriter
from LLM_Mesh.registry.rewards import RewardTask
from LLM_Mesh.registry.routing import Routing
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.telemetry import Telemetry
from LLM_Mesh.registry.unpaid import UnpaidWriter
from LLM_Mesh.registry.usage_audit import UsageAuditor


@dataclass
class Runtime:
    settings: Settings
    store: Store
    table: NodeTable
    writer: RequestWriter
    routing: Routing
    idempotency: IdempotencyCache
    node_auth: NodeAuthenticator
    keys: KeyCache
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    client: NodeClient | None = None
    owns_client: bool = False
    pins: AddressPins = field(default_factory=AddressPins)  # checked, pinned node addresses
    # signs every forwarded request (registry/gateway_key.py); set in the lifespan
    gateway: GatewaySigner | None = None
    # the answer's ``key_rotation`` (core/key_rotation.py): the previous registry.key's
    # signature naming the current key (registry/key_history.py); None without a rotation
    key_rotation: dict[str, str] | None = None
    # the answer's ``key_rotations`` (core/key_chain.py): every link kept, oldest first,
    # the last being ``key_rotation`` (registry/key_history.py); empty without one
    key_rotations: list[dict[str, str]] = field(default_factory=list)
    # countersigns every answer's receipt with the same key (core/receipt.py); set in the
    # lifespan; node keys proven in receipts, cached (a node id is its key's hash)
    receipts: ReceiptSigner | None = None
    # answers ``GET /mesh/identity`` with the same key, for its own URLs only
    # (core/registry_identity.py: a client proves it before the admin key goes out)
    identity: IdentityProver | None = None
    # signs its 403 revoked answers to nodes with the same key (core/revocation_proof.py:
    # a node honours no other); set in the lifespan
    revocations: RevocationSigner | None = None
    node_keys: NodeKeys = field(default_factory=NodeKeys)
    limiter: RateLimiter = field(default_factory=RateLimiter)  # clients' buckets, this process
    admin_memo: AdminKeyMemo = field(default_factory=AdminKeyMemo)  # admin.check_admin's
    admin_made: set[str] = field(default_factory=set)  # made, not yet announced (app_keys)
    node_homes: NodeHomes = field(default_factory=NodeHomes)  # CredentialTries.before_verify
    beat_tokens: BeatTokens = field(default_factory=BeatTokens)  # ... and its beat tokens
    # called with (job, failover) when a request stops trying nodes (tests, the simulator
    # comparison); None on the hot path
    observer: Callable[[Job, Failover], None] | None = None
    # called with (job, its wait) when a request's opt-in wait for a slot ends (tests, the
    # simulator comparison: core/slot_wait.SlotWait traced); None on the hot path
    wait_observer: Callable[[Job, SlotWait], None] | None = None
    # the ledger (registry/ledger.py: ``ledger.append`` moves money) and its signer;
    # set by create_registry_app
    ledger: SqlLedger | None = None
    checkpointer: Checkpointer | None = None
    # closes uptime-reward periods (registry/rewards.py); None when reward_rate is 0
    rewards: RewardTask | None = None
    # Prometheus metrics (None: Settings.metrics off) and the per-request metrics + log line
    metrics: GatewayMetrics | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    # replicas on one store (registry/replicas.py): this replica's beat, None for a store
    # that shares nothing; shared rate-limit buckets (Redis), None: ``limiter`` alone
    replicas: ReplicaBeat | None = None
    shared_limits: RedisLimiter | None = None
    # anonymous requests in flight per address, counted by every replica (Redis); None:
    # this process's (access.InFlightBound)
    shared_in_flight: SharedInFlight | None = None
    # anonymous requests in flight per model (their share of its slots), counted by every
    # replica (Redis); None: this process's (access.AnonymousLast)
    shared_share: SharedInFlight | None = None
    # what the nodes have shown they serve at every replica, for that share (Redis); None:
    # at this process only (registry/redis_shown.py)
    shared_shown: SharedShown | None = None
    # whether the model's anonymous requests sent on pass its share now (a node that
    # refused one left the count: ``admit.over_share``); the send stage asks it before an
    # anonymous request fails over past a node's 429, 503 or failure (share35: a 500, a
    # dropped connection, a timeout: ``anonymous_share.ASKS_THE_SHARE``), (model, allowed);
    # with Redis every replica's count (a round trip). None: no share
    over_share: Callable[[str, bool], Awaitable[bool]] | None = None
    # heartbeat times written in batches behind the answer (heartbeat_writes.py); None:
    # one write per heartbeat (a store without batch methods)
    heartbeats: HeartbeatWriter | None = None
    # quality control: verifiers, canary verdicts, quarantines, trust (registry/quality.py);
    # set by create_registry_app
    quality: Quality | None = None
    # the audit by peers of the token counts nodes state (registry/usage_audit.py); set by
    # create_registry_app
    usage_audit: UsageAuditor | None = None
    # the receipts of streams cut by their client, nobody received, written to the store
    # (registry/cut_receipts.py, migration 0031); set by create_registry_app
    cut_receipts: CutReceiptWriter | None = None
    # requests served unpaid, counted per node for their operators (registry/unpaid.py,
    # migration 0035); set by create_registry_app
    unpaid: UnpaidWriter | None = None
    # settlement (registry/settlement.py); None when Settings.settlement is off
    settlement: Settlement | None = None
    # a lone registry (SQLite): the client ids its previous process was paid for, looked
    # up for the replay window after a start (registry/paid_ids.py); None: replicas, or
    # settlement off
    paid_ids: PaidIds | None = None
    # ``GET /mesh/nodes``'s body, shared until the mesh changes or a second passed
    listing: NodeListing = field(default_factory=NodeListing)
    # each model's served context, what the parse stage holds a request to (listing.py)
    served_contexts: ServedContexts = field(default_factory=ServedContexts)
    # keyed and anonymous requests sent on per model: the class a probe carries is drawn
    # from it (core/priority_mix.py)
    traffic: TrafficMix = field(default_factory=TrafficMix)

    @property
    def http(self) -> NodeClient:
        """The pooled client; only set while the app's lifespan runs."""
        if self.client is None:
            raise MeshError("the registry is not started (its lifespan has not run)")
        return self.client

    @property
    def signer(self) -> GatewaySigner:
        """The gateway's signer; only set while the app's lifespan runs."""
        if self.gateway is None:
            raise MeshError("the registry is not started (its lifespan has not run)")
        return self.gateway

    @property
    def max_attempts(self) -> int:
        """Attempts per request that a node may have worked on (``Settings.max_attempts``;
        1 to ``MAX_ATTEMPTS_TOP`` also where settings were built in code)."""
        return min(MAX_ATTEMPTS_TOP, max(1, self.settings.max_attempts))

    @property
    def max_failovers(self) -> int:
        """Extra nodes tried after ones that did nothing (``Settings.max_failovers``)."""
        return max(0, self.settings.max_failovers)

    @cached_property
    def failover_policy(self) -> FailoverPolicy:
        """The send stage's :class:`~LLM_Mesh.core.failover.FailoverPolicy`, from settings."""
        return FailoverPolicy(max_attempts=self.max_attempts, max_failovers=self.max_failovers)

    @cached_property
    def stream_floor(self) -> StreamFloor:
        """How slow a node's stream may be (``core/stream_guard.py``), from settings: its
        first token within ``request_timeout_s`` + the grace of its opening."""
        s = self.settings
        return StreamFloor(
            s.stream_min_rate, s.stream_grace_s, s.request_timeout_s + s.stream_grace_s
        )

    def store_silent_s(self) -> float | None:
        """Seconds since this replica's beat last reached the shared store, once that is
        ``dead_after_s`` or more (the other replicas take it for dead by then); None
        otherwise, and always for a lone registry (no beat)."""
        beat = self.replicas
        silent = None if beat is None else beat.silent_s()
        return (
            silent
            if beat is not None and silent is not None and silent >= beat.dead_after_s
            else None
        )

    def check_store_reached(self) -> None:
        """Refuse a listing (503 ``store_unavailable``) while :meth:`store_silent_s` says the
        store is out of reach: this replica no longer hears the nodes beating at the others,
        so it would list them down (a client with several URLs asks the next instead)."""
        silent = self.store_silent_s()
        if silent is not None:
            raise StoreUnavailable(
                f"this replica has not reached its database for {silent:.0f} s: what it "
                "knows of the nodes is out of date; ask another replica"
            )

    @property
    def retry_after_s(self) -> int:
        """What ``Retry-After`` says when no node is up: one heartbeat interval."""
        return max(1, round(self.settings.heartbeat_interval_s))


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    if not isinstance(runtime, Runtime):  # pragma: no cover - wiring bug
        raise MeshError("registry runtime missing")
    return runtime


def make_client(pins: AddressPins | None = None) -> NodeClient:
    """The process's one outbound client (aiohttp, pooled, keep-alive); call inside the loop.

    Timeouts come with each call (from settings and the request's deadline); with
    ``pins`` it calls admitted node URLs only, at their pinned addresses.
    """
    return AiohttpNodeClient(max_connections=1000, pins=pins)
