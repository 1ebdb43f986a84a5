"""The dashboard's pages and the fragments they refresh themselves with.

Each page is server-rendered HTML (``templates/``, autoescaped); its live part is a
fragment that ``static/dashboard.js`` fetches again every few seconds and swaps in
(``data-live``), so one template renders a table both times. The operator's fragment
needs the operator's token as a bearer header (``Authorization: Bearer``), checked as
``GET /v1/earnings`` checks it; a wrong, unknown or revoked token is 401, and look-ups
are limited per client address (each is a store query).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from LLM_Mesh.core.identity import is_node_id
from LLM_Mesh.core.ratelimit import address_scope
from LLM_Mesh.errors import InvalidCredential, RateLimited
from LLM_Mesh.registry.admin import bearer
from LLM_Mesh.registry.dashboard import operator_view, views
from LLM_Mesh.registry.dashboard.context import OPERATOR_LOOKUPS, Dashboard, get_dashboard
from LLM_Mesh.registry.dashboard.operator_view import DAYS
from LLM_Mesh.registry.earnings import node_totals

__all__ = [
    "ledger", "ledger_fragment", "models", "models_fragment", "node", "node_fragment", "nodes",
    "nodes_fragment", "not_found", "operator", "operator_fragment", "overview",
    "overview_fragment", "playground", "redirect_home",
]  # fmt: skip


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


# -- overview -------------------------------------------------------------------------------


def _overview_ctx(d: Dashboard) -> dict[str, Any]:
    return {"o": views.overview(d.runtime, d.feed.series, d.now())}


async def overview(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(
        request, "overview.html", page="overview", title="Overview", charts=True, **_overview_ctx(d)
    )


async def overview_fragment(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(request, "_overview.html", **_overview_ctx(d))


# -- nodes ----------------------------------------------------------------------------------


async def _public_earnings(d: Dashboard) -> dict[str, Any] | None:
    """Every node's earnings over the last ``DAYS`` days (settled requests and uptime
    rewards: public on the ledger anyway), as the node table's ``earnings``; ``None``
    when this gateway keeps no ledger. One grouped query per ``Dashboard.cache_ttl_s``,
    however many pages poll."""
    rt = d.runtime
    if rt.ledger is None:
        return None
    ledger = rt.ledger

    async def fetch() -> dict[str, dict[str, int]]:
        return await node_totals(await ledger.engine(), days=DAYS, now=rt.wall_clock())

    return {"days": DAYS, "by_node_map": await d.cached("node_totals", fetch)}


async def _nodes_ctx(d: Dashboard) -> dict[str, Any]:
    rows, total = views.node_rows(d.runtime, d.feed.series, d.now())
    return {"rows": rows, "total": total, "earnings": await _public_earnings(d)}


async def nodes(request: Request) -> Response:
    d = get_dashboard(request)

    async def make() -> HTMLResponse:
        ctx = await _nodes_ctx(d)
        return d.render(request, "nodes.html", page="nodes", title="Nodes", **ctx)

    return await d.shared(request, "nodes", make)


async def nodes_fragment(request: Request) -> Response:
    d = get_dashboard(request)

    async def make() -> HTMLResponse:
        return d.render(request, "_nodes.html", **await _nodes_ctx(d))

    return await d.shared(request, "fragment/nodes", make)


def _stamp(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


async def _node_ctx(d: Dashboard, node_id: str) -> dict[str, Any]:
    n = views.node_detail(d.runtime, d.feed.series, node_id, d.now())
    stored: dict[str, Any] | None = None
    if n is not None:
        rec = await d.runtime.store.get_node(node_id)
        if rec is not None:  # the operator's private fields (URL, hardware) are not taken
            stored = {
                "registered": _stamp(rec.registered_at),
                "requests": rec.requests,
                "failures": rec.failures,
                "tokens": rec.tokens_generated,
            }
    return {"n": n, "stored": stored, "node_id": node_id, "earnings": await _public_earnings(d)}


async def node(request: Request) -> Response:
    d = get_dashboard(request)
    node_id = request.path_params["node_id"]
    ctx = await _node_ctx(d, node_id)
    if ctx["n"] is None and not is_node_id(node_id):
        # not a node's id: nothing of a link's author shown (bidi overrides, a message)
        return d.render(
            request, "error.html", 404, title="Not found", message="There is no such node."
        )
    status = 200 if ctx["n"] is not None else 404
    return d.render(
        request, "node.html", status, page="nodes", title=f"Node {node_id}", charts=True, **ctx
    )


async def node_fragment(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(request, "_node.html", **await _node_ctx(d, request.path_params["node_id"]))


# -- models ---------------------------------------------------------------------------------


def _models_ctx(d: Dashboard) -> dict[str, Any]:
    served, unserved, window_s = views.model_rows(d.runtime, d.feed.series, d.now())
    return {"served": served, "unserved": unserved, "window_s": window_s}


async def models(request: Request) -> Response:
    d = get_dashboard(request)

    async def make() -> HTMLResponse:
        return d.render(request, "models.html", page="models", title="Models", **_models_ctx(d))

    return await d.shared(request, "models", make)


async def models_fragment(request: Request) -> Response:
    d = get_dashboard(request)

    async def make() -> HTMLResponse:
        return d.render(request, "_models.html", **_models_ctx(d))

    return await d.shared(request, "fragment/models", make)


# -- ledger ---------------------------------------------------------------------------------


async def _ledger_ctx(d: Dashboard) -> dict[str, Any]:
    ledger = d.runtime.ledger
    if ledger is None:
        return {"enabled": False, "lp": None}
    return {"enabled": True, "lp": await views.ledger_page(ledger)}


async def ledger(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(
        request, "ledger.html", page="ledger", title="Ledger", scripts=["ledger.js"],
        origin=_origin(request), **await _ledger_ctx(d),
    )  # fmt: skip


async def ledger_fragment(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(request, "_ledger.html", **await _ledger_ctx(d))


# -- playground -----------------------------------------------------------------------------


async def playground(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(
        request, "playground.html", page="playground", title="Playground",
        scripts=["playground.js"], models=views.served_models(d.runtime),
        tasks=views.task_models(d.runtime),
    )  # fmt: skip


# -- operator -------------------------------------------------------------------------------


async def operator(request: Request) -> Response:
    d = get_dashboard(request)
    return d.render(
        request, "operator.html", page="operator", title="Operator", scripts=["operator.js"]
    )


async def operator_fragment(request: Request) -> Response:
    """The operator's nodes, earnings and canary verdicts; ``Authorization: Bearer
    <operator token>`` (the same check as ``GET /v1/earnings``)."""
    d = get_dashboard(request)
    if not bearer(request.headers):
        raise InvalidCredential("send your operator token as Authorization: Bearer <token>")
    address = address_scope(request.client.host) if request.client else "unknown"  # IPv6: /64
    decision = d.lookups.check("operator:" + address, OPERATOR_LOOKUPS, d.clock())
    if not decision.allowed:
        raise RateLimited(
            "too many operator-token look-ups from this address; wait a minute",
            retry_after=max(1, round(decision.retry_after_s)),
            headers=decision.headers,
        )
    rt = d.runtime
    rec = await operator_view.signed_in(rt, request.headers)
    mine = await operator_view.operator_nodes(rt, rec)  # node id -> revoked
    rows, total = views.node_rows(rt, d.feed.series, d.now(), only=set(mine))
    operator_view.mark_revoked(rows, mine)
    offline = sorted(n for n in mine if rt.table.get(n) is None)[: views.MAX_ROWS]
    earned = await operator_view.operator_earnings(rt, rec, mine)
    return d.render(
        request, "_operator.html", operator=rec.name, account=(earned or {}).get("account", "-"),
        rows=rows, total=total, offline=offline, revoked={n for n, r in mine.items() if r},
        earnings=earned, verdicts=operator_view.canary_verdicts(rt, mine),
    )  # fmt: skip


async def redirect_home(request: Request) -> Response:
    return RedirectResponse(request.scope.get("root_path", "") + "/dashboard/", status_code=307)


async def not_found(request: Request, _exc: Exception) -> Response:
    d = get_dashboard(request)
    resp: HTMLResponse = d.render(
        request, "error.html", 404, title="Not found", message="There is no such dashboard page."
    )
    return resp
