"""Reads that refuse a query parameter they do not take (``core/query_names.py``).

:data:`STRICT_QUERY` is a FastAPI dependency: a route (or a router) that names it answers
a request with a query parameter its own signature does not declare with 400
``unsupported_parameter`` (``param``: the first unknown name; the message: every accepted
one), before the route runs. The accepted names are read from the route's declared
query parameters (FastAPI's ``Dependant``), so they are the ones the OpenAPI document
lists. A route takes it with :data:`STRICT`, which also marks its operation in the
document (``x-unknown-query-parameters: refused``), where :func:`document_refusals`
(``registry/openapi.build_openapi``) says the 400. Used by the ledger's public reads (``registry/ledger_api.py``,
``registry/ledger_cosign.py``'s ``GET /v1/ledger/checkpoints/latest``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from LLM_Mesh.core.query_names import unknown_names, unknown_query_message
from LLM_Mesh.errors import UnsupportedParameter

__all__ = [
    "MARK",
    "QUERY_400",
    "STRICT",
    "STRICT_QUERY",
    "accepted_query",
    "document_refusals",
    "refuse_unknown_query",
]


def _names(dependant: Dependant) -> list[str]:
    out = [p.alias for p in dependant.query_params]
    for sub in dependant.dependencies:
        out += _names(sub)
    return out


def accepted_query(route: Any) -> tuple[str, ...]:
    """The query parameters ``route`` (a FastAPI ``APIRoute``) declares (a few: read each
    time a request has a query, no cache to outlive an app)."""
    return tuple(dict.fromkeys(_names(route.dependant)))


def refuse_unknown_query(request: Request) -> None:
    """400 ``unsupported_parameter`` when the request's query names a parameter its route
    does not declare (module doc)."""
    params = request.query_params
    if not params:
        return
    route = request.scope.get("route")
    accepted = accepted_query(route) if route is not None else ()
    unknown = unknown_names(params.keys(), accepted)
    if unknown:
        what = f"{request.method} {getattr(route, 'path', request.url.path)}"
        raise UnsupportedParameter(unknown_query_message(unknown, accepted, what), param=unknown[0])


STRICT_QUERY = Depends(refuse_unknown_query)


QUERY_400 = "a query parameter the operation does not take (`unsupported_parameter`)"
MARK = "x-unknown-query-parameters"  # the document's word on an operation that refuses them

#: what a route declares to refuse them: ``@router.get(path, **STRICT, ...)``: the check
#: and the mark :func:`document_refusals` finds in the OpenAPI document (one place, so the
#: document says it of exactly the routes that do it)
STRICT: dict[str, Any] = {"dependencies": [STRICT_QUERY], "openapi_extra": {MARK: "refused"}}


def document_refusals(paths: dict[str, Any], error: Callable[[str], dict[str, Any]]) -> None:
    """The OpenAPI document's 400 of each operation marked :data:`MARK`, said with its
    other 400s, if any (``error``: the document's error response for a description,
    ``registry/openapi._error``)."""
    for ops in paths.values():
        for op in ops.values():
            if not isinstance(op, dict) or op.get(MARK) != "refused":
                continue
            responses = op.setdefault("responses", {})
            before = responses.get("400", {}).get("description")
            responses["400"] = error(f"{before}; or {QUERY_400}" if before else QUERY_400)
