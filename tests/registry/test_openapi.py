"""The OpenAPI document says what the app answers: the /v1 routes, and fuzzing it all.

The fuzz test runs schemathesis over every operation of ``/openapi.json``
against the real registry app, in process (ASGI), with two real sim nodes
(node apps with the sim engine) behind an httpx transport: no sockets. Every
answer must be documented (status code, content type, headers, body schema)
and none may be a 5xx. Seeded (``derandomize``) and bounded, so it is
reproducible and takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from LLM_Mesh.config import Settings
from LLM_Mesh.core.catalog import catalog_ids
from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, MessageKind
from LLM_Mesh.core.schemas import Hardware, HostedModel, NodeRegistration
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.openapi import build_openapi
from tests.registry.helpers import public_resolver

MODEL = "gemma-3-270m"
UNSERVED_CATALOG = frozenset(catalog_ids()) - {MODEL}  # the sim mesh serves MODEL only
BASE = "http://mesh"
SIM_NODES = ("sim-a", "sim-b")  # host names; the node ids come from their keys


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


class NodeRouter(httpx.AsyncBaseTransport):
    """Sends each request to the node app its host names; unknown hosts refuse."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(f"{request.url.host}:{request.url.port}")
        if transport is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await transport.handle_async_request(request)


@asynccontextmanager
async def sim_mesh(home: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The registry app (lifespan entered) with the sim nodes registered; a client to it."""
    services: list[NodeService] = []
    apps: dict[str, Any] = {}
    for host in SIM_NODES:
        cfg = NodeConfig(
            engine="sim", models=[MODEL], register=False, port=8801,
            public_url=f"http://{host}:8801", max_concurrency=4, max_queue=64,
        )  # fmt: skip
        engine = SimEngine([MODEL], ttft_s=0.0, tokens_per_s=1e6, sleep=_no_sleep)
        # standalone nodes on this machine under their own names (the gateway's Host)
        own = Settings(home=home / host, local_names=(host,))
        svc = NodeService(cfg, own, engine=engine, hardware=Hardware(cpu_count=2))
        await svc.start()
        services.append(svc)
        apps[f"{host}:8801"] = create_node_app(svc, manage_lifespan=False)
    # heartbeats never expire during the run; no background health pass; its sim nodes are
    # plain http at remote names: the registry's opt-out, as a lab's (core/tls.py)
    settings = Settings(
        home=home, heartbeat_interval_s=3600.0, health_check_interval_s=3600.0, anonymous_rpm=None,
        allow_plain_http_nodes=True,
    )  # fmt: skip
    upstream = httpx.AsyncClient(transport=NodeRouter(apps))
    store = MemoryStore()
    token = await add_operator(store, "fuzz")
    app = create_registry_app(
        settings, store=store, http_client=upstream, resolver=public_resolver,
        announce=lambda _key: None,
    )  # fmt: skip
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                for svc in services:  # signed, with an operator token: the real checks
                    body = json.dumps(svc.registration().model_dump(mode="json")).encode()
                    headers = svc.signer.headers(MessageKind.REGISTER, body)
                    headers[HDR_OPERATOR_TOKEN] = token or ""
                    headers["Content-Type"] = "application/json"
                    r = await client.post("/mesh/nodes", content=body, headers=headers)
                    r.raise_for_status()
                await _seed_ledger(app)
                yield client
    finally:
        await upstream.aclose()
        for svc in services:
            await svc.stop()


async def _seed_ledger(app: Any) -> None:
    """A few entries and two checkpoints, so the ledger's proofs have something to prove."""
    from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer

    runtime = app.state.runtime
    await runtime.ledger.append([Transfer("grant", MINT, POOL, 1 + i) for i in range(5)])
    await runtime.checkpointer.checkpoint()
    await runtime.ledger.append([Transfer("grant", MINT, POOL, 9) for _ in range(4)])
    await runtime.checkpointer.checkpoint()


# --- the document -----------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    app = create_registry_app(Settings(home=Path("/nonexistent")), store=MemoryStore())
    return build_openapi(app)


def test_v1_routes_are_documented_with_schemas_and_errors() -> None:
    doc = _doc()
    paths = doc["paths"]
    chat = paths["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ChatCompletionRequest")
    ok = chat["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/event-stream"}
    assert set(chat["responses"]) == {
        "200",
        "400",
        "401",
        "404",
        "409",
        "413",
        "429",
        "502",
        "503",
        "504",
    }
    assert "Retry-After" in chat["responses"]["503"]["headers"]
    assert "/v1/completions" in paths and "/v1/models" in paths
    schemas = doc["components"]["schemas"]
    assert {"ChatCompletion", "ChatCompletionChunk", "ErrorResponse", "ModelList"} <= set(schemas)


def test_mesh_routes_document_400_not_422() -> None:
    doc = _doc()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
    register = doc["paths"]["/mesh/nodes"]["post"]["responses"]
    assert {"200", "400", "413"} <= set(register)
    assert "404" in doc["paths"]["/mesh/nodes/{node_id}/heartbeat"]["post"]["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_registration_url_rule_is_in_the_document() -> None:
    """Found by fuzzing: the document allowed any url, the app refused all but http(s)."""
    url = _doc()["components"]["schemas"]["NodeRegistration"]["properties"]["url"]
    pattern = re.compile(url["pattern"])
    for ok in ("http://n:8801", "https://n.example"):
        assert pattern.search(ok)
        NodeRegistration(node_id="n", url=ok, models=[HostedModel(id="m")])
    for bad in ("ftp://n", "n:8801"):
        assert not pattern.search(bad)
        with pytest.raises(ValidationError):
            NodeRegistration(node_id="n", url=bad, models=[HostedModel(id="m")])


async def test_openapi_json_is_served_with_v1(tmp_path: Path) -> None:
    async with sim_mesh(tmp_path) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200
        assert "/v1/chat/completions" in r.json()["paths"]
        assert (await client.get("/docs")).status_code == 200


# --- fuzzing ----------------------------------------------------------------------------


class Mesh:
    """The sim mesh on its own event loop (a portal thread), called from sync tests."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def send(self, kwargs: dict[str, Any]) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self.client.request(**kwargs)

        return self.portal.call(go)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    home = tmp_path_factory.mktemp("fuzz")
    with start_blocking_portal() as portal:
        cm = portal.wrap_async_context_manager(sim_mesh(home))
        with cm as client:
            yield Mesh(portal, client)


SCHEMA = schemathesis.openapi.from_dict(_doc())
SCHEMA.config.generation.update(modes=["positive", "negative"], max_examples=25, deterministic=True)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@SCHEMA.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """Most generation requests name the model the sim nodes serve; some stream it. A body
    left as generated never names another catalog model: the mesh serves only ``MODEL``,
    and its documented answer for a catalog model nobody serves is a 503
    (``model_unavailable``), which ``not_a_server_error`` would count against the document
    (seen once in CI: a generated body named ``mistral-7b``). Unknown names stay (404)."""
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        served = {**body, "model": MODEL}
        if body["model"] in UNSERVED_CATALOG:
            body = served
        return st.sampled_from([body, served, {**served, "stream": True}])
    return st.just(body)


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzz_openapi_document(case: schemathesis.Case, mesh: Mesh) -> None:
    kwargs = case.as_transport_kwargs(base_url=BASE)
    response = mesh.send(_httpx_kwargs(kwargs))
    case.validate_response(response, checks=CHECKS)


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis' ``requests``-style arguments as ``httpx.AsyncClient.request``'s."""
    out = {k: v for k, v in kwargs.items() if k in ("method", "url", "headers", "params")}
    if kwargs.get("cookies"):
        cookie = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
        out["headers"] = {**(out.get("headers") or {}), "Cookie": cookie}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    if "data" in kwargs:
        out["content"] = kwargs["data"]
    return out


def test_the_admin_s_all_nodes_query_is_documented() -> None:
    """Found 2026-12-06 (departed34): ``GET /mesh/nodes?all=true`` (the admin's every stored
    node, ``registry/node_forget.py``) was read by hand and missing from the document, so
    neither clients nor the fuzzing below knew of it (nor of its 401 without the key)."""
    op = _doc()["paths"]["/mesh/nodes"]["get"]
    params = {p["name"]: p for p in op.get("parameters", [])}
    assert params["all"]["in"] == "query" and not params["all"]["required"]
    assert params["all"]["schema"] == {"type": "boolean", "default": False}
    assert "401" in op["responses"]
    # its stored rows' shape beside the live nodes', ``silent`` in both (cli42: the
    # document said every row a NodeView, and a forgotten row had no ``silent``)
    schemas = _doc()["components"]["schemas"]
    items = schemas["NodeList"]["properties"]["nodes"]["items"]["anyOf"]
    assert {i["$ref"].rsplit("/", 1)[1] for i in items} == {"NodeView", "ForgottenNode"}
    forgotten = schemas["ForgottenNode"]
    assert {"silent", "forgotten", "healthy", "state", "models"} <= set(forgotten["required"])
    assert "silent" in schemas["NodeView"]["properties"]
