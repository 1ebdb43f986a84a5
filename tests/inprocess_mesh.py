"""The real mesh in one process, without sockets: the registry app and sim nodes.

:class:`InProcessMesh` runs the registry + gateway app (``create_registry_app`` on a
``MemoryStore``) and any number of nodes (the real node app around a real
``NodeService`` with the ``sim`` engine), each with its lifespan running, on an event
loop in a background thread. Every HTTP call between them goes through
:class:`HostRouter`, an httpx transport that hands a request to the ASGI app of its
host: the gateway's calls to nodes, the nodes' registration, heartbeats and final
deregistration (their real agent), and the test's own calls. A node is added by
:meth:`InProcessMesh.add_node`, which returns once the registry has accepted the
node's own registration.

Why a loop of its own: the seed API runs a fresh event loop for each synchronous
call (``asyncio.run``) and makes blocking calls (``get_model_info``), so the mesh
must outlive any one loop. :meth:`InProcessMesh.client` is an ``httpx.AsyncClient``
usable from any loop, :meth:`InProcessMesh.sync_client` a blocking one, and
:meth:`InProcessMesh.fetch_json_sync` stands in for ``LLM_Mesh.client.fetch_json_sync``.
What the test's clients send is kept in :attr:`InProcessMesh.requests`; what the
gateway forwarded to nodes in :attr:`InProcessMesh.forwarded`.

The ``inprocess_mesh`` fixture (``tests/conftest.py``) gives a started, empty mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from LLM_Mesh.bounded_http import Read, answer_object
from LLM_Mesh.client import _unreachable, raise_for_error
from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import public_resolver

T = TypeVar("T")

REGISTRY_URL = "http://registry.mesh.test"
CALL_TIMEOUT_S = 30.0
# what the operator's tools on a process's own machine send (the CLI: 127.0.0.1): the
# loopback-only endpoints (``/metrics``, a node's ``/mesh/info`` and ``/mesh/earnings``)
# refuse any other Host (core/browser_origin.py: DNS rebinding); the router still routes
# by the URL's host
ON_THE_MACHINE = {"Host": "127.0.0.1"}


def node_url(node_id: str) -> str:
    return f"http://{node_id}.nodes.test:8801"


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Seen:
    """One request as it went out: method, path, headers, and its JSON body (if any)."""

    method: str
    path: str
    headers: httpx.Headers
    body: Any = None
    host: str = ""


@dataclass
class SimNode:
    node_id: str
    url: str
    service: NodeService
    app: FastAPI
    engine: SimEngine
    link: _Link
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


class HostRouter(httpx.AsyncBaseTransport):
    """Hands each request to the ASGI app mounted for its ``host[:port]``.

    A host with nothing mounted is a connection refused, as on a real network.
    """

    def __init__(self) -> None:
        self._apps: dict[str, httpx.ASGITransport] = {}
        self.registered: dict[str, asyncio.Event] = {}
        self.forwarded: list[Seen] = []

    def mount(self, base_url: str, app: FastAPI) -> None:
        self._apps[httpx.URL(base_url).netloc.decode()] = httpx.ASGITransport(app=app)

    def unmount(self, base_url: str) -> None:
        self._apps.pop(httpx.URL(base_url).netloc.decode(), None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        app = self._apps.get(host)
        if app is None:
            raise httpx.ConnectError(f"nothing listens at {host}", request=request)
        content = await request.aread()
        if host.endswith(".nodes.test:8801") and request.url.path.startswith("/v1/"):
            self.forwarded.append(
                Seen(
                    request.method,
                    request.url.path,
                    request.headers,
                    _json_or_none(content),
                    host,
                )
            )
        response = await app.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/mesh/nodes":
            await response.aread()
            body = _json_or_none(content)
            if response.status_code == 200 and isinstance(body, dict):
                self.registered.setdefault(str(body.get("node_id")), asyncio.Event()).set()
        return response


class _Link(httpx.AsyncBaseTransport):
    """A node's own way out to the network; ``cut`` makes it unreachable (a crash)."""

    def __init__(self, router: HostRouter) -> None:
        self._router = router
        self.cut = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.cut:
            raise httpx.ConnectError("this node is down", request=request)
        return await self._router.handle_async_request(request)


class _Bridge(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A transport for the test's side: each request runs on the mesh's loop."""

    def __init__(self, mesh: InProcessMesh) -> None:
        self._mesh = mesh

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        future = self._mesh.submit(self._mesh._relay(request, content))
        status, headers, body = await asyncio.wrap_future(future)
        return httpx.Response(status, headers=headers, content=body, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        future = self._mesh.submit(self._mesh._relay(request, content))
        status, headers, body = future.result(CALL_TIMEOUT_S)
        return httpx.Response(status, headers=headers, content=body, request=request)


class InProcessMesh:
    """The registry + gateway and sim nodes on a background loop; see the module doc."""

    def __init__(self, home: Path, **settings_kw: Any) -> None:
        settings_kw.setdefault("health_check_interval_s", 3600.0)
        settings_kw.setdefault("ledger_checkpoint_interval_s", 3600.0)  # tests sign when they ask
        settings_kw.setdefault("anonymous_rpm", None)  # one machine, as ``up``: no anonymous limit
        # its nodes learn the gateway key from a plain-http registry of another name: opted in
        settings_kw.setdefault("allow_http_first_use", True)  # (core/first_use.py)
        # its sim nodes serve plain http at fake remote names (*.nodes.test): the registry's
        # opt-out, as a lab's, unless a test requires TLS (core/tls.py)
        if not settings_kw.get("require_tls"):
            settings_kw.setdefault("allow_plain_http_nodes", True)
        self.settings = Settings(home=home, registry_url=REGISTRY_URL, **settings_kw)
        self.registry_url = REGISTRY_URL
        self.store = MemoryStore()
        self.router = HostRouter()
        self.nodes: dict[str, SimNode] = {}  # by name (see add_node)
        self.ids: dict[str, str] = {}  # name -> node id (from the node's key)
        self.operator_token: str | None = None
        self.requests: list[Seen] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._http: httpx.AsyncClient | None = None
        self.app: FastAPI | None = None

    # -- running it -------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> Any:
        """Schedule ``coro`` on the mesh's loop; a ``concurrent.futures.Future``."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the in-process mesh is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the mesh's loop and wait for its result (from any thread)."""
        result: T = self.submit(coro).result(CALL_TIMEOUT_S)
        return result

    def start(self) -> InProcessMesh:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="inprocess-mesh", daemon=True
        )
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._http = httpx.AsyncClient(transport=self.router)
        self._stack.push_async_callback(self._http.aclose)
        # the real node checks: the nodes sign with their own keys and show an operator token
        self.operator_token = await add_operator(self.store, "inprocess")
        await self._start_registry()

    async def _start_registry(self) -> None:
        assert self._stack is not None
        self.app = create_registry_app(
            self.settings,
            store=self.store,
            http_client=self._http,
            resolver=public_resolver,
            announce=lambda _key: None,
        )
        await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        self.router.mount(self.registry_url, self.app)

    def rotate_registry_key(self) -> None:
        """The operator's rotation (docs/deploy.md): ``registry.key`` moved to
        ``registry.key.previous``, and a registry started on the same store at the same URL
        with a new key (the old app stops with the mesh)."""
        home = self.settings.home
        (home / "registry.key").replace(home / "registry.key.previous")
        self.call(self._start_registry())

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.call(self._close())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT_S)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = self._thread = None

    async def _close(self) -> None:
        for node_id in list(self.nodes):
            await self._stop_node(node_id, deregister=True)
        if self._stack is not None:
            await self._stack.aclose()
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me]
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    # -- nodes --------------------------------------------------------------------

    def add_node(
        self,
        models: list[str] | str,
        node_id: str | None = None,
        *,
        region: str | None = "eu",
        keeps_no_prompts: bool | None = None,
        **sim: Any,
    ) -> SimNode:
        """Start a sim node hosting ``models``; returns once the registry accepted it.

        ``node_id`` is the node's *name* here (its host name, and what tests pass to
        :meth:`stop_node`), default ``node-<first model>``; its real id comes from its key
        (:meth:`id_of`). ``sim`` goes to ``SimEngine``
        (``answer_tokens``, ``failure_rate``, ...); it answers at once unless told
        otherwise (``ttft_s=0``, no sleeping between tokens). ``keeps_no_prompts``: its
        declaration (``None``: the sim engine's default, true).
        """
        ids = [models] if isinstance(models, str) else list(models)
        node = self.call(
            self._add_node(ids, node_id or f"node-{ids[0]}", region, sim, keeps_no_prompts)
        )
        return node

    def add_nodes(self, *models: str) -> list[SimNode]:
        """One node per model, each called ``node-<model>``."""
        return [self.add_node(m) for m in models]

    async def _add_node(
        self,
        models: list[str],
        node_id: str,
        region: str | None,
        sim: dict[str, Any],
        keeps_no_prompts: bool | None = None,
    ) -> SimNode:
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} already runs")
        (self.settings.home / "keys").mkdir(parents=True, exist_ok=True)
        sim.setdefault("ttft_s", 0.0)
        sim.setdefault("tokens_per_s", 1000.0)
        sim.setdefault("sleep", _no_sleep)
        engine = SimEngine(models, **sim)
        url = node_url(node_id)
        name = node_id
        config = NodeConfig(
            engine="sim",
            key_file=str(self.settings.home / "keys" / f"{name}.key"),
            operator_token=self.operator_token,
            models=models,
            public_url=url,
            registry_url=self.registry_url,
            region=region,
            keeps_no_prompts=keeps_no_prompts,
            register=True,
        )
        link = _Link(self.router)
        client = httpx.AsyncClient(transport=link)
        service = NodeService(
            config,
            self.settings,
            engine=engine,
            http_client=client,
            hardware=Hardware(cpu_count=2, memory_bytes=4 << 30),
        )
        app = create_node_app(service)
        node_id = service.node_id
        self.ids[name] = node_id
        node = SimNode(node_id, url, service, app, engine, link)
        node.stack.push_async_callback(client.aclose)
        accepted = self.router.registered.setdefault(node_id, asyncio.Event())
        accepted.clear()
        self.router.mount(url, app)
        await node.stack.enter_async_context(app.router.lifespan_context(app))
        self.nodes[name] = node
        await asyncio.wait_for(accepted.wait(), CALL_TIMEOUT_S)
        return node

    def signed(self, name: str, path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """``body`` as bytes and the headers the gateway would send node ``name`` for it:
        nodes serve inference to their gateway only (``core/gateway_auth.py``)."""
        raw = json.dumps(body).encode()
        signer = self.app.state.runtime.signer
        headers = signer.headers(self.id_of(name), "direct-" + str(id(raw)), path,
                                 hashlib.sha256(raw).hexdigest())  # fmt: skip
        headers["Content-Type"] = "application/json"
        return raw, headers

    def id_of(self, name: str) -> str:
        """The node id (derived from its key) of the node started as ``name``."""
        return self.ids[name]

    def stop_node(self, node_id: str, *, deregister: bool = True) -> None:
        """Stop a node: its final OFFLINE (``deregister``), or as if it crashed."""
        self.call(self._stop_node(node_id, deregister=deregister))

    async def _stop_node(self, node_id: str, *, deregister: bool) -> None:
        node = self.nodes.pop(node_id)
        if not deregister:  # gone without a word: unreachable both ways
            node.link.cut = True
            self.router.unmount(node.url)
        await node.stack.aclose()
        self.router.unmount(node.url)

    # -- the test's side -------------------------------------------------------------

    async def _relay(
        self, request: httpx.Request, content: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        self.requests.append(
            Seen(
                request.method,
                request.url.path,
                request.headers,
                _json_or_none(content),
                request.url.netloc.decode(),
            )
        )
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=content)
        response = await self.router.handle_async_request(inner)
        body = await response.aread()
        await response.aclose()
        return response.status_code, response.headers.multi_items(), body

    def client(self) -> httpx.AsyncClient:
        """An async client to the mesh, usable from any event loop."""
        return httpx.AsyncClient(transport=self.transport(), base_url=self.registry_url)

    def transport(self) -> httpx.AsyncBaseTransport:
        """The transport :meth:`client` uses: every request to the mesh's registry app."""
        return _Bridge(self)

    def sync_client(self) -> httpx.Client:
        return httpx.Client(transport=_Bridge(self), base_url=self.registry_url)

    def fetch_json_sync(
        self, base_url: str, path: str, timeout: float = 5.0, read: Read = answer_object
    ) -> Any:
        """``LLM_Mesh.client.fetch_json_sync``, through this mesh (monkeypatch it in)."""
        with self.sync_client() as c:
            try:
                r = c.get(base_url.rstrip("/") + path, timeout=timeout)
            except httpx.ConnectError as exc:
                raise _unreachable(base_url, exc) from exc
        raise_for_error(r)
        return read(r, f"GET {path}'s answer")

    def paths(self) -> list[str]:
        """``"METHOD /path"`` of every request the test's clients sent, in order."""
        return [f"{r.method} {r.path}" for r in self.requests]

    @property
    def completions(self) -> list[Any]:
        """The bodies the test's clients sent to ``/v1/completions`` and ``/v1/chat/completions``."""
        return [r.body for r in self.requests if r.path.endswith("completions")]
