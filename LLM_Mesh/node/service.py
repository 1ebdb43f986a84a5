"""``NodeService``: one node's parts wired together.

It owns the engine, the admission queue, the registry agent, the outbound
HTTP client (one per process, created here unless passed in) and the
counters. The HTTP app (``node.app``) only talks to it. ``start()`` and
``stop()`` are idempotent: the app's lifespan calls them, and tests may start a
service themselves and hand it to an app served by ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh import __version__
from LLM_Mesh.config import Settings
from LLM_Mesh.core.health_proof import HealthProver
from LLM_Mesh.core.identity import NodeSigner
from LLM_Mesh.core.measured_speed import SpeedBook
from LLM_Mesh.core.memory_budget import default_budget
from LLM_Mesh.core.receipt import NodeReceiptSigner
from LLM_Mesh.core.registry_urls import source_words
from LLM_Mesh.core.revocation_proof import TrustedKey
from LLM_Mesh.core.schemas import Hardware, Heartbeat, HostedModel, NodeRegistration, NodeState
from LLM_Mesh.core.shutdown import ShutdownBudget
from LLM_Mesh.errors import InvalidRequest
from LLM_Mesh.node.admission import Admission, AdmissionState
from LLM_Mesh.node.agent import NodeAgent
from LLM_Mesh.node.config import NodeConfig, within_hours
from LLM_Mesh.node.engines.base import Engine, Usage
from LLM_Mesh.node.gateway_guard import GatewayGuard
from LLM_Mesh.node.gateway_pin import pin_path
from LLM_Mesh.node.keys import NodeKey, key_path, load_or_create_key
from LLM_Mesh.node.model_files import model_id_of, resolve_model
from LLM_Mesh.node.served_log import ServedLog, served_log_path
from LLM_Mesh.tls import (
    NODE_PAIR_HINT,
    certificate_fingerprint,
    check_server_pair,
    client_ssl_context,
)

log = logging.getLogger("LLM_Mesh.node")


def node_identity(config: NodeConfig, settings: Settings) -> NodeKey:
    """The node's key (created when missing, said once); warns about a stale ``node_id``."""
    nk = load_or_create_key(key_path(settings, config.key_file))
    if nk.created:
        log.info("made this node's key %s (mode 0600): node id %s", nk.path, nk.node_id)
    if config.node_id and config.node_id != nk.node_id:
        log.warning(
            "node_id %r in the configuration is ignored: a node's id is derived from its key "
            "(%s), so it is %s",
            config.node_id,
            nk.path,
            nk.node_id,
        )
    return nk


def memory_budget(config: NodeConfig, hardware: Hardware | None) -> int | None:
    """``memory_budget_bytes``, else 80 % of the RAM available (None: unknown, no limit)."""
    if config.memory_budget_bytes is not None:
        return config.memory_budget_bytes
    if hardware is None:
        return None
    extra = hardware.model_extra or {}
    available = extra.get("memory_available_bytes")
    if not isinstance(available, int) or available <= 0:
        available = hardware.memory_bytes
    return default_budget(available) if available > 0 else None


def build_engine(
    config: NodeConfig,
    settings: Settings,
    http_client: httpx.AsyncClient | None = None,
    hardware: Hardware | None = None,
) -> Engine:
    """The engine ``config.engine`` names (model files are resolved here: blocking I/O)."""
    if config.engine == "sim":
        from LLM_Mesh.node.engines.sim import SimEngine

        return SimEngine(
            [model_id_of(m) for m in config.models],
            ttft_s=config.sim_ttft_s,
            tokens_per_s=config.sim_tokens_per_s,
            failure_rate=config.sim_failure_rate,
        )
    if config.engine == "openai":
        from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine

        if http_client is None:
            raise ValueError("the openai engine needs an http_client")
        if not config.upstream_url:
            raise ValueError("the openai engine needs upstream_url")
        return OpenAIUpstreamEngine(
            config.upstream_url,
            http_client=http_client,
            api_key=config.upstream_api_key,
            models=[model_id_of(m) for m in config.models],
            timeout_s=settings.request_timeout_s,
        )
    if config.engine == "llama-cpp":
        from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(
            [resolve_model(m, settings) for m in config.models],
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_gpu_layers=config.n_gpu_layers,
            memory_budget_bytes=memory_budget(config, hardware),
            stream_interval_s=config.effective_stream_interval_s(settings),
        )
    raise ValueError(f"unknown engine {config.engine!r}")


def hardware_basics(path: os.PathLike[str] | str = ".") -> Hardware:
    """CPU count, physical memory and free disk, as far as the OS tells."""
    memory = 0
    with contextlib.suppress(AttributeError, ValueError, OSError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    disk = 0
    with contextlib.suppress(OSError):
        disk = shutil.disk_usage(path).free
    return Hardware(cpu_count=os.cpu_count() or 0, memory_bytes=memory, disk_free_bytes=disk)


def detect_hardware_safely(home: Path) -> Hardware:
    """``node.hardware.detect_hardware``, falling back to :func:`hardware_basics`."""
    try:
        from LLM_Mesh.node.hardware import detect_hardware

        return detect_hardware(home)
    except Exception:
        return hardware_basics(home if home.exists() else ".")


def _minute_now() -> int:
    now = datetime.now()
    return now.hour * 60 + now.minute


_STATE = {
    AdmissionState.ONLINE: NodeState.ONLINE,
    AdmissionState.PAUSED: NodeState.PAUSED,
    AdmissionState.DRAINING: NodeState.DRAINING,
}


class NodeService:
    """Config + settings + engine + admission + agent, and the node's counters."""

    def __init__(
        self,
        config: NodeConfig,
        settings: Settings,
        *,
        engine: Engine | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        minute_of_day: Callable[[], int] = _minute_now,
        hardware: Hardware | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = settings
        self.key = node_identity(config, settings)
        self.signer = NodeSigner(self.key.key, wall_clock)
        self.receipts = NodeReceiptSigner(self.key.key)  # signs a receipt of every answer
        self.health_prover = HealthProver(self.key.key)  # signs the registry's health challenges
        self.wall_clock = wall_clock
        self.node_id = self.key.node_id
        self.gateway = GatewayGuard(
            self.node_id,
            registering=config.register,
            wall_clock=wall_clock,
            configured_key=config.registry_public_key,
            local_names=settings.local_names,
            pin_file=pin_path(settings),
        )
        if config.register:  # not over plain http from another host, unless allowed
            self.gateway.check_first_use(
                config.effective_registry_urls(settings),
                allowed=config.allow_http_first_use or settings.allow_http_first_use,
            )
        self.public_url = config.effective_public_url
        if config.tls_cert and config.tls_key:  # a pair, readable: said before a model loads
            check_server_pair(config.tls_cert, config.tls_key, hint=NODE_PAIR_HINT)
        # the gateway pins this certificate (its fingerprint is in the signed registration)
        self.tls_fingerprint = certificate_fingerprint(config.tls_cert) if config.tls_cert else None
        self.admission = Admission(config.max_concurrency, config.max_queue, clock=clock)
        self._engine = engine
        self._client = http_client
        self._owns_client = http_client is None
        self.clock = clock
        self.shutdown_began: float | None = None  # on ``clock``: see begin_shutdown()
        self._sleep = sleep
        self._minute_of_day = minute_of_day
        self.agent: NodeAgent | None = None
        # the agent gave up (an unknown operator token): its words; ``on_fatal`` ends the
        # process (``node_manager.py``: exit TOKEN_REFUSED_EXIT)
        self.fatal: str | None = None
        self.on_fatal: Callable[[str], None] | None = None
        self.started = False
        self._prepared = False
        self.started_at = clock()
        self._auto_paused = False
        where = served_log_path(settings.home, config.served_log)
        self.served = (
            None
            if where is None
            else ServedLog(  # what it served (node/served_log.py)
                where, config.served_log_max_bytes, config.served_log_keep, wall_clock
            )
        )
        self.requests_served = 0
        self.requests_failed = 0
        self.requests_cancelled = 0  # their client (or the gateway) hung up first
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.speeds = SpeedBook()  # what its answers measured, per model (/mesh/info)
        self.started_wall: float | None = None
        self._hardware: Hardware | None = hardware

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the node service is not started")
        return self._engine

    @property
    def http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the node service is not started")
        return self._client

    async def prepare(self) -> None:
        """Client, hardware, engine (model files checked, models loaded); no registration.

        ``NodeManager.serve`` calls it before the server starts, so a bad model
        file is a plain error, not a traceback from inside the server's start-up.
        """
        if self._prepared:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.request_timeout_s, connect=5.0),
                verify=client_ssl_context(self.settings.registry_ca),  # an https registry
            )
        if self._hardware is None:
            self._hardware = await asyncio.to_thread(detect_hardware_safely, self.settings.home)
        if self._engine is None:
            self._engine = await asyncio.to_thread(
                build_engine, self.config, self.settings, self._client, self._hardware
            )
        await self._engine.start()
        if self._engine.simulated:  # found 2026-12-04: the log said nowhere (up's banner does)
            log.info(
                "node %s serves %s on the SIMULATED engine: made-up answers, for tests and "
                "benchmarks (every answer and listing says simulated)",
                self.node_id, ", ".join(m.id for m in self._engine.models()),
            )  # fmt: skip
        self._prepared = True

    async def start(self) -> None:
        if self.started:
            return
        await self.prepare()
        self.started_wall = time.time()
        self.started_at = self.clock()
        self.started = True
        if self.config.register:
            urls = self.config.effective_registry_urls(self.settings)
            # said when none answers, where the settings name these URLs (``node start``
            # sets their source: cli/node_commands.py); a NodeConfig's own: unsaid
            known = tuple(urls) == tuple(self.settings.registry_urls)
            self.agent = NodeAgent(
                client=self.http_client,
                registry_url=urls,
                source=source_words(self.settings.registry_source) if known else "",
                node_id=self.node_id,
                registration=self.registration,
                heartbeat=self.heartbeat,
                interval_s=self.settings.heartbeat_interval_s,
                sleep=self._sleep,
                clock=self.clock,
                signer=self.signer,
                operator_token=self.config.operator_token or self.settings.operator_token,
                on_accepted=self.gateway.pin,
                on_heartbeat=self.gateway.heard,
                pinned_gateway=lambda: self.gateway.registry_id,
                registry_key=self._registry_key,
                on_fatal=self._gave_up,
            )
            self.agent.start()

    def _gave_up(self, message: str) -> None:
        self.fatal = message
        if self.on_fatal is not None:
            self.on_fatal(message)

    def _registry_key(self) -> TrustedKey | None:
        """The registry key this node trusts now (its pinned gateway key): a 403 revoked
        counts only with its signature, or a key its signed rotations lead to from a learned
        one (``core/revocation_proof.py``, ``GatewayGuard.trusted_key``)."""
        return self.gateway.trusted_key

    @property
    def shutdown_budget(self) -> ShutdownBudget:
        """What each step of this node's shutdown may take (``core/shutdown.py``)."""
        return ShutdownBudget(total_s=self.settings.node_shutdown_s)

    def begin_shutdown(self) -> None:
        """The shutdown started now (the server got SIGTERM/SIGINT): the goodbye's deadline
        counts from here, after the drain (``NodeManager``'s server calls it)."""
        if self.shutdown_began is None:
            self.shutdown_began = self.clock()

    async def stop(self) -> None:
        """Final OFFLINE (deregister, by the shutdown's deadline), then close the engine and
        our client."""
        if not self.started and not self._prepared:
            return
        self.started = self._prepared = False
        if self.agent is not None:
            deadline = self.shutdown_budget.goodbye_deadline(self.shutdown_began, self.clock())
            await self.agent.stop(deregister=True, deadline=deadline)
        if self._engine is not None:
            await self._engine.close()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.served is not None:
            self.served.close()

    # -- state ------------------------------------------------------------------

    def refresh_availability(self) -> None:
        """Pause outside ``availability_hours``; resume inside (if we paused)."""
        spec = self.config.availability_hours
        if spec is None:
            return
        inside = within_hours(spec, self._minute_of_day())
        if not inside and self.admission.state is AdmissionState.ONLINE:
            self.admission.pause()
            self._auto_paused = True
        elif inside and self._auto_paused and self.admission.state is AdmissionState.PAUSED:
            self.admission.resume()
            self._auto_paused = False

    @property
    def state(self) -> NodeState:
        if not self.started:
            return NodeState.JOINING
        return _STATE[self.admission.state]

    def pause(self) -> None:
        self.admission.pause()
        self._auto_paused = False
        self._wake()

    def resume(self) -> None:
        self.admission.resume()
        self._auto_paused = False
        self._wake()

    def drain(self) -> None:
        self.admission.drain()
        self._wake()

    def _wake(self) -> None:
        if self.agent is not None:
            self.agent.wake()

    # -- models and counters ------------------------------------------------------

    def models(self) -> list[HostedModel]:
        return self.engine.models() if self._engine is not None else []

    def find_model(self, model_id: str) -> HostedModel | None:
        return next((m for m in self.models() if m.id == model_id), None)

    def record(
        self, usage: Usage | None, *, ok: bool, cancelled: bool = False, tokens_seen: int = 0
    ) -> None:
        """Count one request: answered (``ok``), else cancelled by its client, else failed."""
        if ok:
            self.requests_served += 1
        elif cancelled:
            self.requests_cancelled += 1
        else:
            self.requests_failed += 1
        self.tokens_generated += usage.completion_tokens if usage else tokens_seen
        self.prompt_tokens += usage.prompt_tokens if usage else 0

    # -- what the registry and the operator see -------------------------------------

    def registration(self) -> NodeRegistration:
        self.refresh_availability()
        return NodeRegistration(
            node_id=self.node_id,
            url=self.public_url,
            models=self.models(),
            region=self.config.region,
            hardware=self._hardware or Hardware(),
            max_concurrency=self.config.max_concurrency,
            max_queue=self.config.max_queue,
            version=__version__,
            state=self.state,
            engine=self.engine.name,
            simulated=self.engine.simulated,
            keeps_no_prompts=self.config.declares_no_prompts_kept,
            tls_fingerprint=self.tls_fingerprint,
            gateway_kx_key=self.gateway.kx_public_key,
        )

    def heartbeat(self) -> Heartbeat:
        """The load, the age of the last keyed request (``keyed_age_s``: while places are
        kept for keyed ones, ``core/priority.py``), and extra fields: ``models`` (every model
        with ``loaded``/``load_time_s``) and ``service_s`` (measured seconds per request,
        EWMA; null before the first)."""
        self.refresh_availability()
        models = self.models()
        return Heartbeat.model_validate(
            {
                "in_flight": self.admission.in_flight,
                "queued": self.admission.queued,
                "loaded_models": [m.id for m in models if m.loaded],
                "state": self.state,
                "requests_served": self.requests_served,
                "tokens_generated": self.tokens_generated,
                "models": [m.model_dump(mode="json") for m in models],
                "service_s": self.admission.service.measured_s,
                "gateway_kx_key": self.gateway.kx_public_key,
                "keyed_age_s": self.admission.keyed_age_s(),
                "keeps_no_prompts": self.config.declares_no_prompts_kept,
            }
        )

    def health_proof(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The signed answer to a registry's health challenge in ``headers`` (none for
        a missing or malformed one, or one for another node: ``core/health_proof.py``)."""
        return self.health_prover.answer(headers, self.wall_clock())

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "state": self.state.value,
            "in_flight": self.admission.in_flight,
            "queued": self.admission.queued,
            "models": [m.id for m in self.models()],
            "node_id": self.node_id,
        }

    async def earnings(self, days: int = 30) -> dict[str, Any]:
        """This node's earnings from its registry (``NodeAgent.earnings``)."""
        if self.agent is None:
            raise InvalidRequest(
                "this node does not register with a registry (register = false): it earns nothing"
            )
        return await self.agent.earnings(days)

    def info(self) -> dict[str, Any]:
        engine = self._engine
        simulated = engine.simulated if engine else self.config.engine == "sim"
        return {
            "node_id": self.node_id,
            "url": self.public_url,
            "region": self.config.region,
            "version": __version__,
            "engine": engine.name if engine else self.config.engine,
            "simulated": simulated,
            "state": self.state.value,
            "models": [
                m.model_dump(mode="json") | {"measured": self.speeds.wire(m.id, simulated)}
                for m in self.models()
            ],
            "hardware": (self._hardware or Hardware()).model_dump(mode="json"),
            "max_concurrency": self.config.max_concurrency,
            "max_queue": self.config.max_queue,
            "availability_hours": self.config.availability_hours,
            "uptime_s": round(max(0.0, self.clock() - self.started_at), 3) if self.started else 0.0,
            "started_at": self.started_wall,
            "requests_served": self.requests_served,
            "requests_failed": self.requests_failed,
            "requests_cancelled": self.requests_cancelled,
            "tokens_generated": self.tokens_generated,
            "prompt_tokens": self.prompt_tokens,
            "memory_budget_bytes": getattr(engine, "memory_budget_bytes", None),
            "in_flight": self.admission.in_flight,
            "queued": self.admission.queued,
            "service_s": self.admission.service.measured_s,
            "queue_wait_s": round(self.admission.wait_estimate_s(), 3),
            "registry": {
                "url": self.config.effective_registry_url(self.settings),
                "registered": bool(self.agent and self.agent.registered),
                "last_error": self.agent.last_error if self.agent else None,
                # the registries that revoked this node (403 revoked; core/revoked_notice.py)
                "revoked_by": self.agent.revoked.among(self.agent.registry_urls)
                if self.agent is not None
                else [],
                # the registry's active health checks of this node, as its last heartbeat
                # answer said (None: not said: no check yet, or an older registry)
                "health": self.agent.registry_health.wire()
                if self.agent is not None and self.agent.registry_health is not None
                else None,
            }
            if self.config.register
            else None,
        }
