"""The registry + gateway application: wiring and lifespan.

:func:`create_registry_app` builds one FastAPI app holding one
:class:`~LLM_Mesh.registry.runtime.Runtime`. Its lifespan opens the store
(``SqlStore(settings.effective_database_url)`` unless one is given), loads the
stored nodes into the node table and the router (:class:`Routing`), creates the pooled outbound HTTP client
(:class:`~LLM_Mesh.registry.node_client.AiohttpNodeClient` unless one is given; an
``httpx.AsyncClient`` given is wrapped in an
:class:`~LLM_Mesh.registry.node_client_httpx.HttpxNodeClient`), starts the health loops, the request writer, the API key revocation poll and the uptime
rewards' period closer (``registry/rewards.py``, when ``reward_rate`` > 0; the due period
closed before it serves: ``RewardTask.close_first``; each of those steps on the store run
again while PostgreSQL is away, up to 120 s: ``start_retry.py``), and on
shutdown (or when a start step raises: what it started so far; ``app_stops.py``) stops
them, writes what is queued and closes what it opened. With
``Settings.metrics`` it serves ``GET /metrics`` (``registry/metrics.py``, access by
``metrics_http.py``).

A store that implements :class:`~LLM_Mesh.registry.ports.ReplicaState` (the SQL store on
PostgreSQL, the memory store; not SQLite: :func:`~LLM_Mesh.registry.app_store.replica_state`) makes this process one
replica among any number on that store: its beat
(``replicas.py``), the shared idempotency keys (``shared_idempotency.py``), the node poll
(``node_sync.py``) and the health-check leases; ``Settings.redis_url`` shares the
rate-limit buckets (``redis_limits.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import cast

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from LLM_Mesh import __version__
from LLM_Mesh.body_limit import BodyLimit
from LLM_Mesh.config import DEFAULT_REGISTRY_HOST, DEFAULT_REGISTRY_PORT, Settings
from LLM_Mesh.core.key_census import stranger_key
from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.core.trusted_proxies import LOOPBACK_PROXIES, uvicorn_names
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.logs import uvicorn_log_kwargs
from LLM_Mesh.metrics_http import install_metrics
from LLM_Mesh.registry import retention
from LLM_Mesh.registry.address_pins import AddressPins, Resolver, system_resolver
from LLM_Mesh.registry.api import router as mesh_router
from LLM_Mesh.registry.api_keys import KeyCache
from LLM_Mesh.registry.app_keys import start_keys
from LLM_Mesh.registry.app_redis import share_through_redis
from LLM_Mesh.registry.app_start import first_beat, witness_pusher
from LLM_Mesh.registry.app_stops import Stops
from LLM_Mesh.registry.app_store import (
    default_store,
    ledger_engine_of,
    replica_state,
    store_changes,
)
from LLM_Mesh.registry.balance_api import router as balance_router
from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.canary_departures_sync import departure_sync
from LLM_Mesh.registry.canary_scheduler import CanaryScheduler, load_pool
from LLM_Mesh.registry.cut_receipts import CutReceiptStore, CutReceiptWriter, stores_cut_receipts
from LLM_Mesh.registry.dashboard import install_dashboard
from LLM_Mesh.registry.earnings_api import router as earnings_router
from LLM_Mesh.registry.errors import JSONAnswer, install_error_handlers
from LLM_Mesh.registry.gateway import install_gateway
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.heartbeat_writes import HeartbeatWriter, SeqBatcher, batches_heartbeats
from LLM_Mesh.registry.hot_heartbeat import RegistryApp
from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.ledger import EngineOnce, SqlLedger
from LLM_Mesh.registry.ledger_api import router as ledger_router
from LLM_Mesh.registry.ledger_cosign import router as cosign_router
from LLM_Mesh.registry.ledger_durable import durable_step
from LLM_Mesh.registry.ledger_mark import ledger_guard, store_behind
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.lone_idempotency import LoneIdempotency
from LLM_Mesh.registry.metrics import GatewayMetrics
from LLM_Mesh.registry.node_auth import NodeAuthenticator, SignedNodeAuth
from LLM_Mesh.registry.node_client import NodeClient
from LLM_Mesh.registry.node_client_httpx import HttpxNodeClient
from LLM_Mesh.registry.node_forget import forget_gone
from LLM_Mesh.registry.node_retention import node_row_pruner
from LLM_Mesh.registry.node_sync import NodeSync, StoreHealthLeases
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.openapi import install_openapi
from LLM_Mesh.registry.paid_ids import PaidIds
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import KeptRequestKeys, Store, UsageAuditStore
from LLM_Mesh.registry.pricing_api import router as pricing_router
from LLM_Mesh.registry.quality import Quality, QualityWatcher
from LLM_Mesh.registry.receipts_api import router as receipts_router
from LLM_Mesh.registry.replicas import PUBLISHED_NODES, ReplicaBeat, demand_snapshot
from LLM_Mesh.registry.request_log import RequestWriter
from LLM_Mesh.registry.retention import CutReceiptPruner, RequestLogPruner, SettlementPruner
from LLM_Mesh.registry.revocations import RevocationWatcher
from LLM_Mesh.registry.rewards import RewardTask
from LLM_Mesh.registry.routing import Routing
from LLM_Mesh.registry.runtime import Runtime, make_client
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from LLM_Mesh.registry.snapshot import load_nodes
from LLM_Mesh.registry.start_retry import StartRetry
from LLM_Mesh.registry.telemetry import Telemetry
from LLM_Mesh.registry.unpaid import UnpaidStore, UnpaidWriter, stores_unpaid
from LLM_Mesh.registry.usage_audit import UsageAuditor, declared_contexts
from LLM_Mesh.registry.usage_audit_sync import shares_usage_audit

log = logging.getLogger(__name__)


def create_registry_app(
    settings: Settings,
    store: Store | None = None,
    http_client: httpx.AsyncClient | NodeClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    resolver: Resolver | None = None,
    *,
    wall_clock: Callable[[], float] = time.time,
    node_auth: NodeAuthenticator | None = None,
    announce: Callable[[str], None] | None = None,
    gateway_key: Ed25519PrivateKey | None = None,
    witness_client: httpx.AsyncClient | None = None,
    served_urls: Sequence[str] = (),
    clock_at: Callable[[float], float] | None = None,
) -> FastAPI:
    """The registry + gateway app. Pass ``store``/``http_client``/``resolver`` to inject (tests).

    ``resolver`` resolves node host names at registration (default: the system's);
    a ``NodeClient`` passed as ``http_client`` is used as it is (its own pins, if any).
    Node messages are checked by ``node_auth`` (default: :class:`SignedNodeAuth` on the
    store: signatures, operator tokens, sequence numbers, revocation). At start-up the
    store's admin key is settled (``registry/admin.py``); a key made then is passed to
    ``announce`` once (default: printed to stderr), and the URLs it may be sent to are recorded
    beside it (``settings.registry_urls`` and ``served_urls``, ``registry serve``'s). Forwarded requests are signed with
    ``gateway_key`` (default: ``$LLM_MESH_HOME/registry.key``, made once; ``gateway_key.py``);
    with ``$LLM_MESH_HOME/registry.key.previous`` (or the chain kept in
    ``registry.key.rotations``) every registration answer carries the chain of signed
    rotations ending at the key (``key_rotations``, ``registry/key_history.py``).
    Checkpoints go to ``settings.ledger_witness_urls`` over ``witness_client`` (default:
    ``witness_push.make_witness_client``, owned and closed here; ``witness_push.py``).
    ``clock_at``: ``clock``'s reading at a wall-clock time, for the stored heartbeats' stamps
    (default: now less their age; a test's clock that moves only when told passes its own).
    """
    settings.check_node_transport()  # --require-tls with --allow-plain-http-nodes: said here
    table = NodeTable(settings.heartbeat_expiry_s, clock)
    pins = AddressPins(  # node addresses and certificates called (address_pins.py)
        allow_private=settings.allow_private_nodes,
        private_origins=settings.private_node_origins,
        allow_loopback=settings.allow_loopback_nodes,
        local_mesh=settings.local_mesh,
        resolver=resolver or system_resolver,
        transport=settings.node_transport,  # stored nodes: by the addresses resolved
    )
    the_store = store if store is not None else default_store(settings)
    routing = Routing(table, clock)
    batched = batches_heartbeats(the_store)
    if node_auth is not None:
        auth = node_auth
    else:  # heartbeats' sequence numbers taken in batches (heartbeat_writes.py)
        seqs = cast(Store, SeqBatcher(the_store)) if batched else the_store
        auth = SignedNodeAuth(seqs, wall_clock=wall_clock)
    revocations = RevocationWatcher(the_store, table, routing)
    shared = replica_state(the_store)
    beat: ReplicaBeat | None = None
    node_sync: NodeSync | None = None
    idempotency = IdempotencyCache(clock, retry_window_s=settings.sdk_retry_window_s)
    if shared is None and callable(getattr(the_store, "keep_request_keys", None)):
        idempotency = LoneIdempotency(  # SDK attempts' ends kept across a restart
            cast(KeptRequestKeys, the_store), clock, wall_clock=wall_clock,
            retry_window_s=settings.sdk_retry_window_s,
        )  # fmt: skip
    if shared is not None:
        demand = routing.demand
        beat = ReplicaBeat(
            shared,
            demand=lambda: demand_snapshot(
                demand.in_flight,
                demand.waiting,
                demand.refused_counts(),
                routing.router.in_flight_by_node(PUBLISHED_NODES),
            ),
            wall_clock=wall_clock,
        )
        routing.others, beat.on_beat = beat.others_demand, routing.refresh_shares  # the floor
        idempotency = SharedIdempotency(
            shared, beat, clock, wall_clock=wall_clock,
            running_s=settings.request_timeout_s + 600.0,
            retry_window_s=settings.sdk_retry_window_s,
        )  # fmt: skip
        node_sync = NodeSync(
            shared, table, routing, wall_clock=wall_clock, replica_id=beat.replica_id, pins=pins,
            transport=settings.node_transport, clock_at=clock_at,
        )  # fmt: skip
    runtime = Runtime(
        settings=settings,
        store=the_store,
        table=table,
        writer=RequestWriter(the_store),
        routing=routing,
        idempotency=idempotency,
        node_auth=auth,
        keys=KeyCache(the_store, clock),
        clock=clock,
        pins=pins,
        wall_clock=wall_clock,
        replicas=beat,
        heartbeats=(
            HeartbeatWriter(the_store, beat.replica_id if beat is not None else None)
            if batched
            else None
        ),
    )
    if stores_cut_receipts(the_store):  # a cut stream's receipt, for its payer (0031)
        runtime.cut_receipts = CutReceiptWriter(cast(CutReceiptStore, the_store))
    if stores_unpaid(the_store):  # requests served unpaid, for their nodes' operators (0035)
        runtime.unpaid = UnpaidWriter(cast(UnpaidStore, the_store))
    if settings.metrics:
        metrics = GatewayMetrics(table, routing.router, routing.demand, runtime.writer)
        runtime.metrics = metrics
        routing.on_finish = metrics.attempt
        routing.on_blame = metrics.blamed
        metrics.wait_places(routing.send_places, "send")
    runtime.telemetry = Telemetry(runtime.metrics, settings.log_requests)
    if settings.redis_url:  # connects on first use, inside the server's loop
        share_through_redis(runtime, settings, settings.redis_url)
    ledger_engine = ledger_engine_of(the_store)
    ledger = SqlLedger(ledger_engine, wall_clock=wall_clock)
    runtime.ledger = ledger
    if settings.reward_rate > 0:
        runtime.rewards = RewardTask(
            the_store, ledger, rate=settings.reward_rate, period_s=settings.reward_period_s,
            grace_s=settings.heartbeat_interval_s, wall_clock=wall_clock,
            reward_simulated=settings.reward_simulated,
            uptime_nodes=settings.reward_uptime_nodes,
        )  # fmt: skip
    # the request log's retention (retention.py), on the clock that stamps the rows
    # (``account.py``: ``datetime.now``), not the injected ``wall_clock``
    pruner: RequestLogPruner | None = None
    if settings.request_log_keep_days > 0:
        pruner = RequestLogPruner(
            the_store, keep_days=settings.request_log_keep_days,
            reward_period_s=settings.reward_period_s, grace_s=settings.heartbeat_interval_s,
        )  # fmt: skip
    # settled and void settlements' retention, on the settlement's database (the ledger's)
    settlement_pruner: SettlementPruner | None = None
    if settings.settlement_keep_days > 0:
        settlement_pruner = SettlementPruner(ledger_engine, keep_days=settings.settlement_keep_days)
    node_pruner = node_row_pruner(settings, the_store, ledger_engine)  # quiet rows (30 days)
    receipt_pruner: CutReceiptPruner | None = None  # cut streams' receipts (400 days)
    if stores_cut_receipts(the_store) and settings.cut_receipt_keep_days > 0:
        receipt_pruner = CutReceiptPruner(
            cast(CutReceiptStore, the_store), keep_days=settings.cut_receipt_keep_days
        )
    unpaid_pruner = retention.unpaid_pruner(the_store, settings.unpaid_keep_days)  # (400 days)
    quality = Quality(the_store, routing, threshold=settings.trust_threshold)
    runtime.quality = quality
    if runtime.metrics is not None:  # every quarantine counted, by its reason's kind
        quality.on_quarantine = runtime.metrics.quarantined
    # a node far above its peers' counts is quarantined as by a failed probe (usage_audit.py)
    # its evidence the store's: every replica's answers, kept over a restart (migration 0026)
    usage_audit = runtime.usage_audit = UsageAuditor(
        quality, metrics=runtime.metrics, contexts=declared_contexts(runtime.table),
        store=cast(UsageAuditStore, the_store) if shares_usage_audit(the_store) else None,
        store_clock=True,  # its windows on the database server's clock (PostgreSQL)
    )  # fmt: skip
    quality_watcher = QualityWatcher(quality)
    # the store polls, by the topic of their change counter (SqlStore.poll_version)
    store_polls: dict[str, Poller] = {
        "revocations": revocations, "api_keys": runtime.keys, "quality": quality_watcher,
    }  # fmt: skip
    prober = CanaryProber(  # an invalid prompt file: a ValueError here, before serving
        runtime, quality, prompts=load_pool(settings.canary_prompts, settings.canary_prompts_mode),
        fresh_share=settings.canary_fresh_share,
    )  # fmt: skip
    departures = departure_sync(the_store, prober)  # its tallies the store's (None: kept none)
    budget = ProbeBudget(share=min(1.0, settings.canary_share),
                         min_interval_s=settings.canary_min_interval_s)  # fmt: skip
    canary = CanaryScheduler(prober, budget)
    if settings.settlement:
        runtime.settlement = Settlement(
            ledger, fee_bps=settings.network_fee_bps, wall_clock=wall_clock,
            pool_daily_budget=settings.pool_daily_budget, lease_estimates=settings.settle_lease,
            lease_idle_s=settings.settle_lease_idle_s,
            # a restart on the same home recovers its predecessor at once (not a scratch ledger)
            home=None if isinstance(ledger_engine, EngineOnce) else settings.home,
        )  # fmt: skip
        runtime.settlement.held = quality.held  # a quarantined node's earnings are held
        if runtime.metrics is not None:  # its failed syncs, journalled and recovered answers
            runtime.settlement.watch = runtime.metrics
            runtime.metrics.loops.watch([runtime.settlement])  # its rounds', its writer's
            runtime.metrics.sync_failing = runtime.settlement.sync_failing
        if shared is None:  # a lone registry: ids paid before a restart (paid_ids.py)
            runtime.paid_ids = PaidIds(ledger.engine, idempotency.ttl_s, wall_clock)
    health = HealthChecker(
        table,
        lambda: runtime.http,
        on_change=routing.sync,
        interval_s=settings.health_check_interval_s,
        sweep_interval_s=settings.heartbeat_interval_s,
        timeout_s=min(10.0, max(1.0, settings.connect_timeout_s * 2)),
        leases=(
            None
            if shared is None or beat is None
            else StoreHealthLeases(
                shared, beat.replica_id, wall_clock, dead_after_s=beat.dead_after_s
            )
        ),
        wall_clock=wall_clock,
        # the pins of node URLs no node has any more go (address_pins.py, retain)
        after_pass=lambda: _upkeep(runtime),
        on_result=runtime.metrics.health_check if runtime.metrics is not None else None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # each step on the store again while PostgreSQL is away (start_retry.py, 120 s)
        start = StartRetry(getattr(runtime.store, "url", None))
        pusher = witness_pusher(settings, ledger, witness_client, wall_clock, clock)
        app.state.witness_pusher = pusher  # None: no LLM_MESH_LEDGER_WITNESS_URLS

        async def load() -> Checkpointer:  # the store opened, its state loaded: may rerun
            await runtime.store.open()
            # a store restored behind a checkpoint already published is refused (ledger_mark)
            marks = None if isinstance(ledger_engine, EngineOnce) else await ledger_guard(
                ledger, settings, wall_clock)  # fmt: skip
            key = await start_keys(
                runtime, health, settings=settings, gateway_key=gateway_key,
                served_urls=served_urls, announce=announce, wall_clock=wall_clock,
            )  # fmt: skip
            # replicas: the rows aged on the store's clock where this one is behind it
            read_now = None if node_sync is None else await node_sync.first_read_now()
            await load_nodes(  # the quiet forgotten on the store's clock where told (forget42)
                table, runtime.store, runtime.pins, transport=settings.node_transport,
                forget_s=settings.node_forget_s, read_now=read_now,
                wall_now=datetime.fromtimestamp(wall_clock(), timezone.utc),
            )  # fmt: skip
            if node_sync is not None:  # the checks' results, since when and why (replicas)
                await node_sync.load_checks()
            routing.sync_all()
            if isinstance(runtime.node_auth, SignedNodeAuth):  # not one look-up per node
                await runtime.node_auth.load_keys([e.node_id for e in table.entries()])
            await quality.load()
            checkpointer = Checkpointer(
                ledger, key, settings.ledger_origin,
                every=settings.ledger_checkpoint_every,
                interval_s=settings.ledger_checkpoint_interval_s, wall_clock=wall_clock,
            )  # fmt: skip
            runtime.checkpointer = checkpointer
            if marks is not None:
                checkpointer.keep = marks.keep_off_loop
                checkpointer.durable = durable_step(ledger_engine)  # SQLite: fsync first
            ledger.on_append = checkpointer.note_append
            if pusher is not None:
                checkpointer.on_signed = pusher.wake
            if not isinstance(ledger_engine, EngineOnce):
                stored = [k for k, _ in await ledger.keys()]  # a replica without the key
                warning = stranger_key(
                    checkpointer.public_key, stored, rotated=bool(runtime.key_rotations)
                )
                if warning is not None:
                    log.warning("%s", warning)
                await checkpointer.ensure_published()
            return checkpointer

        loops = None if runtime.metrics is None else runtime.metrics.loops
        # each start's stop recorded as it runs (app_stops.py: their order); the metrics
        # watch the failed rounds of each loop started (metrics_loops.py), and these:
        stops = Stops(None if loops is None else lambda part: loops.watch([part]))
        if loops is not None:
            loops.watch([runtime.heartbeats, departures])
        if pusher is not None and witness_client is None:
            stops.add("witness_client", pusher.client.aclose)
        for name in ("shared_shown", "shared_in_flight", "shared_share", "shared_limits"):
            if (shared_part := getattr(runtime, name)) is not None:
                stops.add(name, shared_part.aclose)
        try:
            checkpointer = await start.run("opening the store and loading its state", load)
            if isinstance(runtime.idempotency, LoneIdempotency):  # its expired rows purged
                runtime.idempotency.start()
            if isinstance(runtime.idempotency, SharedIdempotency | LoneIdempotency):
                stops.add("idempotency", runtime.idempotency.close)
            if runtime.heartbeats is not None:
                stops.add("heartbeats", runtime.heartbeats.flush)
            if http_client is None:
                runtime.client, runtime.owns_client = make_client(runtime.pins), True
                stops.add("client", runtime.client.aclose)
            elif isinstance(http_client, httpx.AsyncClient):
                runtime.client = HttpxNodeClient(http_client, owns=False, pins=runtime.pins)
                runtime.owns_client = False
            else:
                runtime.client, runtime.owns_client = http_client, False
            if beat is not None:
                await first_beat(beat)
                stops.start("beat", beat)
            if node_sync is not None:
                stops.start("node_sync", node_sync)
            if runtime.shared_shown is not None:  # what the nodes showed, shared (redis_shown)
                runtime.shared_shown.start()
            if (settle := runtime.settlement) is not None:  # stopped before the last checkpoint
                await start.run("loading operators", lambda: settle.load_operators(runtime.store))
                await start.run("starting the settlement", settle.start)
                stops.add("settlement", settle.stop)
            # the store polls skip their queries while nothing they read was written (SQLite)
            for topic, poller in store_polls.items():
                poller.changes = store_changes(runtime.store, topic)
            stops.start("writer", runtime.writer)
            if runtime.cut_receipts is not None:
                stops.start("cut_receipts", runtime.cut_receipts)
            if runtime.unpaid is not None:
                stops.start("unpaid", runtime.unpaid)
            if runtime.metrics is not None:  # --workers N: this worker's gauges, written
                stops.start("metrics", runtime.metrics)
            stops.start("health", health)
            stops.start("revocations", revocations)
            stops.start("checkpointer", checkpointer)
            if pusher is not None:  # stopped before the last checkpoint: pushed at next start
                stops.start("pusher", pusher)
            stops.start("keys", runtime.keys)
            if (rewards := runtime.rewards) is not None:  # the due period closed first
                await start.run("closing the due reward period",
                                lambda: rewards.close_first(settings.reward_start_close_s))  # fmt: skip
                stops.start("rewards", rewards)
            stops.start("quality_watcher", quality_watcher)
            stops.start("usage_audit", usage_audit)  # its pending sums written at stop
            if departures is not None:  # the tallies loaded before the first probe
                await start.run("loading the canary's departures", departures.open)
                stops.add("departures", departures.stop)  # its pending tallies written
            stops.start("canary", canary)
            for prune in (pruner, settlement_pruner, node_pruner, receipt_pruner, unpaid_pruner):
                if prune is not None:  # the node pruner after the due reward close (rows closed)
                    stops.start("prune", prune)
            yield
        finally:  # what started stopped (a start step that raised too), then the store closed
            try:
                await stops.run()
            finally:
                runtime.client = None
                if isinstance(ledger_engine, EngineOnce):
                    await ledger_engine.dispose()
                await runtime.store.close()

    app = RegistryApp(  # /v1 POST and heartbeats skip the middleware stack (hot_heartbeat.py)
        max_heartbeat_bytes=settings.max_mesh_body_bytes,
        title="LLM Mesh registry + gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by install_openapi, with its headers
        openapi_url=None,  # ... and so is /openapi.json (nosniff)
        redoc_url=None,
        default_response_class=JSONAnswer,  # nosniff on the routes' JSON answers
    )
    app.state.runtime = runtime
    app.state.health = health
    app.state.request_log_pruner = pruner  # None: the request log is kept forever
    app.state.settlement_pruner = settlement_pruner  # None: settlements are kept forever
    app.state.node_pruner = node_pruner  # None: nodes rows are kept forever
    app.state.cut_receipt_pruner = receipt_pruner  # None: cut receipts are kept forever
    app.state.unpaid_pruner = unpaid_pruner  # None: unpaid counts are kept forever
    app.state.node_sync = node_sync  # None for a store that shares nothing
    app.state.store_polls = store_polls
    app.state.canary = prober
    app.state.canary_scheduler = canary  # its background probes (tests stop it: a manual clock)
    install_error_handlers(app)
    install_gateway(app)
    app.include_router(mesh_router)
    app.include_router(cosign_router)  # before ledger_router: /checkpoints/latest is its own
    app.include_router(ledger_router)
    app.state.dashboard = install_dashboard(app, runtime, wall_clock=wall_clock)
    app.include_router(earnings_router)
    app.include_router(balance_router)
    app.include_router(receipts_router)
    app.include_router(pricing_router)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_mesh_body_bytes,
        limits=[("/v1/", settings.limits.max_body_bytes)],
    )
    install_openapi(app)
    if runtime.metrics is not None:
        install_metrics(app, runtime.metrics.registry, settings)
    return app


def _upkeep(runtime: Runtime) -> None:
    """After each health-check pass: forget the nodes gone past ``node_forget_s``
    (``node_forget.py``), the pins of node URLs no node has any more
    (``AddressPins.retain``) and the metrics' children of nodes not heard from within the
    heartbeat expiry, or gone offline (``GatewayMetrics.retain``): node ids that come and
    go would grow both without end."""
    table = runtime.table
    forget_gone(runtime)  # nodes quiet past ``node_forget_s`` leave memory (node_forget.py)
    runtime.pins.retain(e.url for e in table.entries())
    if runtime.metrics is not None:
        now, expiry = table.clock(), table.expiry_s
        runtime.metrics.retain(
            e.node_id for e in table.entries()
            if e.state is not NodeState.OFFLINE and e.last_heartbeat is not None
            and now - e.last_heartbeat < expiry
        )  # fmt: skip


def serve(
    settings: Settings,
    host: str = DEFAULT_REGISTRY_HOST,
    port: int = DEFAULT_REGISTRY_PORT,
    *,
    log_level: str = "info",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    sock: socket.socket | None = None,
    trusted_proxies: tuple[str, ...] = LOOPBACK_PROXIES,
) -> None:
    """Run the registry + gateway with uvicorn until interrupted (``llm-mesh registry serve``).

    With ``tls_cert``/``tls_key`` (PEM files) it serves https only. Its stop ends within
    ``settings.registry_shutdown_s`` of the signal (``stop_watchdog.py``). ``sock``: one of
    ``--workers N`` (``registry/workers.py``) serves the socket its supervisor bound, shared
    by every worker (``host`` and ``port`` then only name it), and binds none of its own.
    ``X-Forwarded-For`` is believed from ``trusted_proxies`` only (``core/trusted_proxies``).
    """
    from LLM_Mesh.registry.stop_watchdog import run_bounded
    from LLM_Mesh.slow_clients import WRITE_STALL_S, guarded_http, raise_fd_limit

    if (tls_cert is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if tls_cert is not None and tls_key is not None:
        from LLM_Mesh.tls import REGISTRY_PAIR_HINT, check_server_pair

        check_server_pair(tls_cert, tls_key, hint=REGISTRY_PAIR_HINT)  # one line, first
    from LLM_Mesh.core.admin_key_scope import served_urls
    from LLM_Mesh.gc_freeze import freeze_after_startup
    from LLM_Mesh.heap import cap_arenas, trim_periodically
    from LLM_Mesh.registry.pg_connect import sqlite_file
    from LLM_Mesh.registry.store_checks import (
        checks_retry,
        nothing_left_on_refusal,
        store_unusable,
    )
    from LLM_Mesh.server_process import require_free_port
    from LLM_Mesh.worker_beat import beat_for_supervisor

    # said in one line before migrations, keys and settlement start (not uvicorn's bind error
    # or a traceback after them); a worker's supervisor holds the port (it bound it)
    if sock is None:
        require_free_port(host, port, " (another registry? `llm-mesh up` runs its registry on "
                          "8800): stop it, or serve on another port: --port N")  # fmt: skip
    url = settings.effective_database_url
    with nothing_left_on_refusal(url):  # a refusal leaves no new registry.db behind
        problem = store_unusable(url)  # the file, the server, a newer llm-mesh's schema
        if problem is not None:
            raise StoreUnavailable(f"{problem} (--home, LLM_MESH_HOME or --database-url)")
        behind = asyncio.run(  # a restored older backup (ledger_mark.py); a lost connection waited
            checks_retry(url).run("reading its ledger", lambda: store_behind(settings))
        )
        if behind is not None:
            raise LedgerBehind(behind)

        cap_arenas(settings.malloc_arena_max)  # before uvicorn and the store start threads
        # idle connections (each held up to READ_TIMEOUT_S) meet this soft limit of open files,
        # not the usual 1,024: ~35 a second from one client took every one (found 2026-12-05)
        raise_fd_limit()
        registry = create_registry_app(  # its admin key goes to the URLs it serves on too
            settings, served_urls=served_urls(host, port, tls_cert is not None)
        )
        app = trim_periodically(freeze_after_startup(registry), settings.malloc_trim_s)
        sqlite = sqlite_file(url)  # named when the start cannot write it (start_writes.py)
        run_bounded(  # uvicorn.run, its stop bounded: a step hung for good holds no exit
            beat_for_supervisor(app), settings.registry_shutdown_s, host=host, port=port,
            database=None if sqlite is None else str(sqlite),
            log_level=log_level, access_log=False,  # a worker of --workers N: beating (worker_beat)
            forwarded_allow_ips=uvicorn_names(trusted_proxies),  # never $FORWARDED_ALLOW_IPS
            ssl_certfile=tls_cert and os.path.expanduser(tls_cert),  # "~/..." quoted: the home
            ssl_keyfile=tls_key and os.path.expanduser(tls_key),
            **uvicorn_log_kwargs(settings.log_format),
            # no slowloris: a request arrives within READ_TIMEOUT_S; no slow consumer: a client
            # that takes nothing of its answer for WRITE_STALL_S is let go
            http=guarded_http(write_stall_s=WRITE_STALL_S),
            **({"sockets": [sock]} if sock is not None else {}),  # it listens once started
        )  # fmt: skip
