"""Reads that refuse a query parameter they do not take (``core/query_names.py``).

:data:`STRICT_QUERY` is a FastAPI dependency: a route (or a router) that names it answers
a request with a query parameter its own signature does not declare with 400
``unsupported_parameter`` (``param``: the first unknown name; the message: every accepted
one), before the route runs. The accepted names are read from the route's declared
query parameters (FastAPI's ``Dependant``), so they are the ones the OpenAPI document
lists (with those its ``openapi_extra`` documents by hand: ``GET /mesh/nodes``'s ``all``).
A route takes it with :data:`STRICT`, which also marks its operation in the document
(``x-unknown-query-parameters: refused``), where :func:`document_refusals`
(``registry/openapi.build_openapi``) says the 400. Used by every GET but those below
(query42): the ledger's reads (``registry/ledger_api.py``, ``registry/ledger_cosign.py``),
``/mesh/nodes|models|demand|usage-audit|identity`` (``registry/api.py``), ``/v1/balance``,
``/v1/earnings``, ``/v1/pricing``, ``/v1/receipts/{hash}``. A plain Starlette route (no
dependencies) takes :func:`strict_endpoint` instead, its accepted names given: the
gateway's ``GET /v1/models`` and ``/v1/models/{id}`` (:data:`HAND_DOCUMENTED`: their
operations are written by hand in ``registry/openapi.py``) and the dashboard's data feeds
(``/dashboard/api/*``, ``/dashboard/fragment/*``; outside the document).

Left lenient, on purpose: ``GET /healthz`` (a balancer's probe that adds a query, a cache
buster, must not take a replica out), ``/metrics`` (a scraper's ``params``), ``/docs``,
``/openapi.json`` and the dashboard's HTML pages (a link's tracking parameters): none
filters anything. The POSTs are not checked: the hot ``/v1`` ones count microseconds
(a body field no endpoint has is refused there, ``core/unsupported.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from starlette.responses import Response

from LLM_Mesh.core.query_names import unknown_names, unknown_query_message
from LLM_Mesh.errors import UnsupportedParameter

__all__ = [
    "HAND_DOCUMENTED",
    "MARK",
    "QUERY_400",
    "STRICT",
    "STRICT_QUERY",
    "Endpoint",
    "accepted_query",
    "check_query",
    "document_refusals",
    "refuse_unknown_query",
    "strict",
    "strict_endpoint",
]


def _names(dependant: Dependant) -> list[str]:
    out = [p.alias for p in dependant.query_params]
    for sub in dependant.dependencies:
        out += _names(sub)
    return out


def _documented(route: Any) -> list[str]:
    """The query parameters ``route``'s ``openapi_extra`` documents (read by hand)."""
    extra = getattr(route, "openapi_extra", None) or {}
    return [p["name"] for p in extra.get("parameters", ()) if p.get("in") == "query"]


def accepted_query(route: Any) -> tuple[str, ...]:
    """The query parameters ``route`` (a FastAPI ``APIRoute``) declares, and those its
    ``openapi_extra`` documents (a few: read each time a request has a query, no cache to
    outlive an app)."""
    return tuple(dict.fromkeys(_names(route.dependant) + _documented(route)))


def check_query(request: Request, accepted: tuple[str, ...], path: str) -> None:
    """400 ``unsupported_parameter`` when the request's query names a parameter not in
    ``accepted`` (``path``: the route's, said in the message)."""
    params = request.query_params
    if not params:
        return
    unknown = unknown_names(params.keys(), accepted)
    if unknown:
        what = f"{request.method} {path}"
        raise UnsupportedParameter(unknown_query_message(unknown, accepted, what), param=unknown[0])


def refuse_unknown_query(request: Request) -> None:
    """400 ``unsupported_parameter`` when the request's query names a parameter its route
    does not declare (module doc)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    accepted = accepted_query(route) if route is not None else ()
    check_query(request, accepted, getattr(route, "path", request.url.path))


Endpoint = Callable[[Request], Awaitable[Response]]


def strict_endpoint(endpoint: Endpoint, path: str, *accepted: str) -> Endpoint:
    """``endpoint`` (a plain Starlette route's) that first refuses a query parameter not
    in ``accepted`` (``path``: its route's, as the message says it)."""

    @wraps(endpoint)
    async def strict(request: Request) -> Response:
        if request.query_params:
            check_query(request, accepted, path)
        return await endpoint(request)

    return strict


STRICT_QUERY = Depends(refuse_unknown_query)


QUERY_400 = "a query parameter the operation does not take (`unsupported_parameter`)"
MARK = "x-unknown-query-parameters"  # the document's word on an operation that refuses them

#: what a route declares to refuse them: ``@router.get(path, **STRICT, ...)``: the check
#: and the mark :func:`document_refusals` finds in the OpenAPI document (one place, so the
#: document says it of exactly the routes that do it)
STRICT: dict[str, Any] = {"dependencies": [STRICT_QUERY], "openapi_extra": {MARK: "refused"}}


def strict(openapi_extra: dict[str, Any]) -> dict[str, Any]:
    """:data:`STRICT` for a route with an ``openapi_extra`` of its own (its documented
    query parameters accepted: ``GET /mesh/nodes``'s ``all``)."""
    return {"dependencies": [STRICT_QUERY], "openapi_extra": {**openapi_extra, MARK: "refused"}}


#: the operations written by hand in the document (``registry/openapi._v1_paths``) whose
#: routes take :func:`strict_endpoint`: the query parameters each accepts (a test holds
#: the document's and the route's to these)
HAND_DOCUMENTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("/v1/models", "get"): ("all",),
    ("/v1/models/{model_id}", "get"): (),
}


def document_refusals(paths: dict[str, Any], error: Callable[[str], dict[str, Any]]) -> None:
    """The OpenAPI document's 400 of each operation marked :data:`MARK` (those of
    :data:`HAND_DOCUMENTED` marked here), said with its other 400s, if any (``error``: the
    document's error response for a description, ``registry/openapi._error``)."""
    for (path, method), _accepted in HAND_DOCUMENTED.items():
        op = paths.get(path, {}).get(method)
        if isinstance(op, dict):
            op[MARK] = "refused"
    for ops in paths.values():
        for op in ops.values():
            if not isinstance(op, dict) or op.get(MARK) != "refused":
                continue
            responses = op.setdefault("responses", {})
            before = responses.get("400", {}).get("description")
            responses["400"] = error(f"{before}; or {QUERY_400}" if before else QUERY_400)
