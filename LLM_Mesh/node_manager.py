"""Seed API: run a hosting node from Python.

    from LLM_Mesh.node_manager import NodeManager, NodeConfig

    NodeManager(NodeConfig(engine="sim", models=["gemma-3-270m"])).run()

``run()`` blocks, serving the node with uvicorn until SIGINT/SIGTERM, then
shuts down cleanly (the registry is told the node is gone). ``llm-mesh node
start`` calls ``NodeManager(config, settings).run()``. Without a config, the
one in ``$LLM_MESH_HOME/node.toml`` is used, else the defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from LLM_Mesh.config import Settings
from LLM_Mesh.core.peer_exempt import PeerExemption, parse_trusted_peers
from LLM_Mesh.errors import RegistrationRefused
from LLM_Mesh.logs import uvicorn_log_kwargs
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import (
    NodeConfig,
    default_config_path,
    load_node_config,
    save_node_config,
)
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.server_process import SignalServer, exit_on_signal, require_free_port

__all__ = ["NodeConfig", "NodeManager", "load_node_config", "save_node_config"]

#: the peers whose ``X-Forwarded-For`` a node believes: a proxy on its own machine only
PROXY_PEERS = "127.0.0.1,::1"


class NodeManager:
    """One node: its config, settings, service and (while serving) its server."""

    def __init__(self, config: NodeConfig | None = None, settings: Settings | None = None):
        self.settings = settings if settings is not None else Settings.from_env()
        if config is None:
            path = default_config_path(self.settings)
            config = load_node_config(path) if path.is_file() else NodeConfig()
        self.config = config
        self.service = NodeService(config, self.settings)
        self._server: Any = None
        self._exit_while_loading = False  # run() owns the process's signals: it sets it
        # peers not counted against peer_cap: loopback, the registries' addresses (resolved
        # while serving: node/registry_peers.py), trusted_peers (core/peer_exempt.py)
        self.exemption = PeerExemption(
            parse_trusted_peers(config.trusted_peers)
            + parse_trusted_peers(self.settings.trusted_peers)
        )

    @property
    def node_id(self) -> str:
        return self.service.node_id

    @property
    def url(self) -> str:
        return self.service.public_url

    @property
    def peer_cap(self) -> int:
        """The connections one (non-loopback) peer may hold on this node at once."""
        from LLM_Mesh.slow_clients import node_peer_cap

        return node_peer_cap(self.config.max_concurrency, self.config.max_queue)

    def create_app(self) -> FastAPI:
        """The node's ASGI app (its lifespan starts and stops the service)."""
        return create_node_app(self.service)

    def uvicorn_config(self) -> Any:
        """The uvicorn config :meth:`serve` runs the node with (a ``uvicorn.Config``).

        Proxy headers (``X-Forwarded-For``) are believed from a loopback peer only: a
        reverse proxy on the node's own machine (docs/operations.md) so tells the node its
        client, which the operator's endpoints (loopback only) and a standalone node's
        ``/v1`` go by. Never from another peer, whatever ``$FORWARDED_ALLOW_IPS`` says
        (uvicorn reads it from the environment: ``*`` in many container images, or a
        registry's balancer set for ``registry serve`` in an environment the node shares):
        such a peer's ``X-Forwarded-For: 127.0.0.1`` made it the node's operator (found
        2026-12-06, attack35: ``tests/node/test_node_forwarded.py``). A node is called
        directly (the gateway pins its address and certificate): no balancer of its own.
        """
        import uvicorn

        from LLM_Mesh.gc_freeze import freeze_after_startup
        from LLM_Mesh.heap import trim_periodically
        from LLM_Mesh.slow_clients import guarded_http

        return uvicorn.Config(
            trim_periodically(freeze_after_startup(self.create_app()), self.settings.malloc_trim_s),
            host=self.config.host,
            port=self.config.port,
            lifespan="on",
            forwarded_allow_ips=PROXY_PEERS,  # never $FORWARDED_ALLOW_IPS (docstring)
            log_level="info",
            access_log=False,
            # requests in flight get what the shutdown budget leaves after the goodbye
            # (uvicorn hands it to asyncio.wait_for: a float works, its annotation says int)
            timeout_graceful_shutdown=self.service.shutdown_budget.drain_s,  # type: ignore[arg-type]
            # "~/..." in node.toml is the home folder (found 2026-12-04: uvicorn took it
            # literally and stopped with FileNotFoundError after the checks passed)
            ssl_certfile=_expanded(self.config.tls_cert),
            ssl_keyfile=_expanded(self.config.tls_key),
            # no slowloris: a request arrives within READ_TIMEOUT_S; and one peer holds at
            # most node_peer_cap connections (slow_clients.py)
            http=guarded_http(max_per_peer=self.peer_cap, exempt=self.exemption),
            **uvicorn_log_kwargs(self.settings.log_format),
        )

    async def serve(self) -> None:
        """Serve until stopped (signal or :meth:`stop`); deregisters on the way out."""
        from LLM_Mesh.heap import cap_arenas
        from LLM_Mesh.slow_clients import raise_fd_limit

        _require_free_port(self.config.host, self.config.port)  # before a model loads
        cap_arenas(self.settings.malloc_arena_max)  # before the engine and uvicorn start threads
        raise_fd_limit()  # one peer meets max_per_peer below, not the process's 1024 files
        config = self.uvicorn_config()
        self._server = _server(config, self.service.begin_shutdown)
        self.service.on_fatal = lambda _message: self.stop()
        loading = exit_on_signal("loading the model") if self._exit_while_loading else nullcontext()
        peers = self._registry_peers()
        try:
            with loading:  # run(): a stop signal now exits at once, not after the load
                await self.service.prepare()  # a bad model file raises here, plainly
            await self._server.serve()
        finally:
            if peers is not None:
                peers.cancel()
            self._server = None
            await self.service.stop()  # no-op when the lifespan already stopped it
        if self.service.fatal is not None:  # found 2026-12-05, polish32: retried for ever
            raise RegistrationRefused(self.service.fatal)

    def _registry_peers(self) -> asyncio.Task[None] | None:
        """Resolve the registries' hosts into :attr:`exemption` now, every 5 minutes and
        after each registration (``node/registry_peers.py``); None when not registering."""
        from LLM_Mesh.node.registry_peers import RegistryPeers

        if not self.config.register:
            return None
        peers = RegistryPeers(self.exemption, self.config.effective_registry_urls(self.settings))
        return asyncio.create_task(peers.run(self._registrations))

    def _registrations(self) -> int:
        """Registrations the agent (made in the lifespan, later) has counted so far."""
        agent = self.service.agent
        return agent.registrations if agent is not None else 0

    def stop(self) -> None:
        """Ask a running :meth:`serve` to finish (thread-safe enough: sets a flag)."""
        if self._server is not None:
            self.service.begin_shutdown()
            self._server.should_exit = True

    def run(self) -> None:
        """Block serving the node; SIGINT/SIGTERM shut it down cleanly.

        Runs on uvloop when it is installed (``uvicorn[standard]`` brings it), as
        ``uvicorn.run`` does for the registry. A signal while the models load exits at once
        (``server_process.exit_on_signal``).
        """
        self._exit_while_loading = True
        try:
            import uvloop
        except ImportError:
            asyncio.run(self.serve())
        else:
            uvloop.run(self.serve())

    def info(self) -> dict[str, Any]:
        return self.service.info()


def _require_free_port(host: str, port: int) -> None:
    """``PortInUse`` when something listens on ``host:port`` (another node, ``llm-mesh up``'s),
    rather than uvicorn's bind error after the models have loaded."""
    require_free_port(
        host, port, " (another node? `llm-mesh up` runs its node on 8801): stop it, or give "
        "this node another port: --port N, or port = N in node.toml",
    )  # fmt: skip


def _server(config: Any, on_exit: Callable[[], None]) -> SignalServer:
    """uvicorn's server, calling ``on_exit`` when the shutdown signal (SIGTERM, SIGINT)
    comes: the drain and the goodbye share one deadline from it (``core/shutdown.py``)."""
    return SignalServer(config, lambda _signum: on_exit(), what="the node")


def _expanded(path: str | None) -> str | None:
    """A configured file path with ``~`` expanded (None stays None)."""
    return None if path is None else str(Path(path).expanduser())
