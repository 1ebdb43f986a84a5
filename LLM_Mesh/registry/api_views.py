"""The registry's ``/mesh`` endpoints that are not a node's own messages (those, register,
heartbeat and goodbye, are ``registry/api.py``'s, whose router includes this one).

What the mesh looks like: ``GET /mesh/nodes`` (nodes' URLs and hardware with the admin key
only; ``?all=true`` every stored one), ``GET /mesh/models``, ``GET /mesh/demand``,
``GET /mesh/usage-audit`` (admin key); the admin's passes now: ``POST /mesh/health-check``,
``POST /mesh/canary/run`` (``registry/admin.py`` checks the key, wrong ones counted per address:
:func:`tries_of`); ``GET /mesh/identity`` (public, limited per address and in all): the
registry's signature of a client's nonce, which a client asks for before it sends the home's
admin key (``core/registry_identity.py``); ``GET /healthz``. Split out of ``api.py``
(2026-12-07, hygiene44: it had reached the 600-line bound).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.core.ratelimit import Limits, address_scope
from LLM_Mesh.core.schemas import NODE_PRIVATE_FIELDS
from LLM_Mesh.errors import InvalidRequest, RateLimited
from LLM_Mesh.registry.admin import CredentialTries, bearer, check_admin
from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.demand import demand_report
from LLM_Mesh.registry.errors import JSONAnswer
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.listing import mesh_models
from LLM_Mesh.registry.node_forget import LIST_OPENAPI, stored_rows
from LLM_Mesh.registry.runtime import Runtime, get_runtime
from LLM_Mesh.registry.strict_query import STRICT, strict

__all__ = ["IDENTITY_PER_ADDRESS", "IDENTITY_TOTAL_PER_MIN", "router", "tries_of"]

router = APIRouter()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def tries_of(request: Request, rt: Runtime) -> CredentialTries:
    """Where this request's wrong admin keys count (``admin.check_admin``: per address)."""
    client = request.client.host if request.client else None
    return CredentialTries(
        rt.limiter, client, rt.clock(), rt.admin_memo, rt.node_homes, rt.beat_tokens
    )


@router.get("/mesh/nodes", response_model=None, **strict(LIST_OPENAPI))
async def list_nodes(request: Request) -> Response:
    """Every node: id, region, models, health, load, ``keeps_no_prompts``, trust score and
    canary tally (``canary_passed``: as at the start of the hour, in powers of two). Its
    URL and hardware are the operator's private details: only with the admin key
    (``Authorization: Bearer``; a wrong key is 401, no key the public listing), which
    also gets the exact live tally and ``canary_last_probe``. Built
    again only after the mesh changed, or a second later (``registry/node_listing.py``).
    Nodes quiet past ``node_forget_s`` (24 h) are left out; ``?all=true`` (the admin key
    only) adds every stored one, revoked ones too (``registry/node_forget.py``)."""
    rt = get_runtime(request)
    rt.check_store_reached()  # 503: its view of the nodes is out of date
    private: set[str] | None = set(NODE_PRIVATE_FIELDS)
    everything = request.query_params.get("all") == "true"
    if bearer(request.headers) is not None or everything:
        await check_admin(request.headers, rt.store, tries_of(request, rt))
        private = None

    def build() -> dict[str, Any]:
        nodes = [v.model_dump(mode="json", exclude=private) for v in rt.routing.views()]
        if rt.quality is not None:
            for n in nodes:
                # the public's tally is an hour late and coarse (core/canary_publish.py),
                # the admin's live and exact
                n.update(rt.quality.view(n["node_id"], live=private is None))
        return {"nodes": nodes}

    if everything:  # not cached: the admin's, rare, and it reads the store
        body = build()
        recs, revoked = await rt.store.list_nodes(), await rt.store.revoked_nodes_since(_EPOCH)
        body["nodes"] += stored_rows(recs, revoked, [n["node_id"] for n in body["nodes"]])
        return JSONAnswer(body)
    now = rt.clock()
    router = rt.routing.router
    router.tick(now)  # an ejection over by now ends here, a change (not at the next pick)
    quality = rt.quality.changes if rt.quality is not None else 0
    version = (rt.table.changes, quality, router.changes)
    audience = "public" if private is not None else "admin"
    return rt.listing.answer(audience, version, now, build)


@router.get("/mesh/models", **STRICT)
async def list_mesh_models(request: Request) -> dict[str, Any]:
    rt = get_runtime(request)
    rt.check_store_reached()
    return {"models": mesh_models(rt.table)}


@router.get("/mesh/demand", **STRICT)
async def mesh_demand(request: Request) -> dict[str, Any]:
    """Per model: requests waiting, refused in the window, nodes serving (``registry/demand.py``)."""
    rt = get_runtime(request)
    others = rt.replicas.others_demand() if rt.replicas is not None else ()
    return demand_report(rt.table, rt.routing.demand, others)


@router.post("/mesh/health-check")
async def health_check(request: Request) -> dict[str, Any]:
    """One active health-check pass now (admin key)."""
    rt = get_runtime(request)
    await check_admin(request.headers, rt.store, tries_of(request, rt))
    checker = request.app.state.health
    if not isinstance(checker, HealthChecker):  # pragma: no cover - wiring bug
        raise RuntimeError("health checker missing")
    return {"results": await checker.run_pass(force=True)}


@router.post("/mesh/canary/run")
async def canary_run(
    request: Request, node: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """One canary probe of every node (or ``node``) and model (or ``model``) now (admin key):
    each verdict (``pass`` | ``fail`` | ``unverified`` | ``error``); a failure quarantines."""
    rt = get_runtime(request)
    await check_admin(request.headers, rt.store, tries_of(request, rt))
    prober = request.app.state.canary
    if not isinstance(prober, CanaryProber):  # pragma: no cover - wiring bug
        raise RuntimeError("canary prober missing")
    return {"results": [r.to_dict() for r in await prober.run_round(node, model)]}


@router.get("/mesh/usage-audit", **STRICT)
async def usage_audit(request: Request) -> dict[str, Any]:
    """The audit by peers of nodes' stated token counts (admin key): each node and model's
    answers counted and its share of the gateway's caps beside its peers' median, and the
    recent verdicts, each a quarantine (``registry/usage_audit.py``)."""
    rt = get_runtime(request)
    await check_admin(request.headers, rt.store, tries_of(request, rt))
    if rt.usage_audit is None:
        return {"policy": None, "nodes": [], "verdicts": []}
    return rt.usage_audit.view()


IDENTITY_PER_ADDRESS = Limits(rpm=120)  # GET /mesh/identity a minute, per client address
IDENTITY_TOTAL_PER_MIN = 6000  # ... and from every address together, this process


@router.get("/mesh/identity", **STRICT)
async def mesh_identity(request: Request, origin: str = "", nonce: str = "") -> dict[str, str]:
    """This registry's Ed25519 signature of a client's random ``nonce`` (base64url, 16 to 64
    bytes) for ``origin``, the URL the client called, if it is one of this registry's own;
    public, one signature (``core/registry_identity.py``). A client sends the home's admin
    key only after it (``admin_proof.py``)."""
    rt = get_runtime(request)
    now = rt.clock()
    host = request.client.host if request.client else None
    # a client on this machine (the home's admin CLI) is not counted in, nor refused by, the
    # total: strangers exhausting it locked the operator out (found 2026-12-03, review)
    total = None if is_loopback(host) else rt.limiter.total("identity", IDENTITY_TOTAL_PER_MIN, now)
    scope = "identity:" + (address_scope(host) if host else "unknown")
    wait = 0.0 if total is None else total.wait(now)
    decision = rt.limiter.check(scope, IDENTITY_PER_ADDRESS, now) if wait <= 0 else None
    if decision is None or not decision.allowed:
        retry = wait if decision is None else decision.retry_after_s
        raise RateLimited(
            "too many identity proofs asked of this registry; wait a moment",
            retry_after=max(1, math.ceil(retry)),
        )
    if total is not None:
        total.take(now)
    if rt.identity is None:  # pragma: no cover - the lifespan sets it
        raise InvalidRequest("this registry is not started")
    answer = rt.identity.answer(origin, nonce)
    if isinstance(answer, str):
        raise InvalidRequest(answer, param="nonce" if answer.startswith("nonce") else "origin")
    return answer


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """``{"status": "ok"}``; 503 ``store_unreachable`` from a replica whose beat has not
    reached the shared store for ``dead_after_s`` (the other replicas take it for dead by
    then: a balancer's health check, and a client's ping, move to another replica); 200
    ``degraded`` while settlement's syncs of the SQLite store's log fail (found 2026-12-05:
    only a log line): the replica still serves and settles (a 503 would take a lone
    registry out for a risk to its last commits), a power cut may lose the last ones."""
    rt = get_runtime(request)
    silent = rt.store_silent_s()
    if silent is None:
        failing = None if rt.settlement is None else rt.settlement.sync_failing_s()
        if failing is None:
            return JSONResponse({"status": "ok"})
        detail = (
            f"settlement's syncs of the database's log have failed for {failing:.0f} s (the "
            "disk?): answers are served and written, but a power cut may lose the last "
            "ones; its journal of answers not written is kept; its log says why"
        )
        body = {"status": "degraded", "settlement": "log_sync_failing",
                "failing_s": round(failing), "detail": detail}  # fmt: skip
        return JSONResponse(body)
    detail = (
        f"this replica has not reached its database for {silent:.0f} s: it cannot read "
        "what the other replicas write, nor settle a request; its log says why"
    )
    body = {"status": "store_unreachable", "silent_s": round(silent), "detail": detail}
    return JSONResponse(body, status_code=503)
