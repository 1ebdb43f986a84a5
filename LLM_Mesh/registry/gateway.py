"""The OpenAI API the mesh offers: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

The POST endpoints are plain Starlette routes (no dependency injection), served ahead
of the app's middleware stack and router (``LLM_Mesh/hot_routes.py``): they are the hot
path, and hand each request to the app's
:class:`~LLM_Mesh.registry.pipeline.Pipeline` (parse → admit → send → relay →
account). ``/v1/models`` lists models and ``/v1/models/{id}`` shows one (:mod:`~LLM_Mesh.registry.listing`).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.core.schemas import MAX_MODEL_ID_CHARS
from LLM_Mesh.errors import InvalidRequest, MeshError, ModelNotFound
from LLM_Mesh.hot_routes import HotRoutesApp
from LLM_Mesh.registry.errors import answer_exception, json_response
from LLM_Mesh.registry.listing import known_model_ids, openai_model, openai_models
from LLM_Mesh.registry.parse import CHAT_PATH, COMPLETIONS_PATH, MAX_BODY_BYTES, parse_json_object
from LLM_Mesh.registry.pipeline import Pipeline
from LLM_Mesh.registry.runtime import get_runtime
from LLM_Mesh.registry.strict_query import strict_endpoint

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "MAX_BODY_BYTES",
    "install_gateway",
    "list_models",
    "parse_json_object",
    "retrieve_model",
]


def _pipeline(request: Request) -> Pipeline:
    # read by key: Starlette's ``State`` keeps its values in a dict of its own, so reading
    # one as an attribute first fails the ordinary look-up (an ``AttributeError`` made,
    # then ``__getattr__`` called) on every request; the same value (perf45). ``State`` is
    # a ``Mapping`` from Starlette 0.52 (the floor in pyproject.toml; review45)
    pipeline = request.app.state["pipeline"]
    if not isinstance(pipeline, Pipeline):  # pragma: no cover - wiring bug
        raise MeshError("gateway pipeline missing")
    return pipeline


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions"""
    return await _pipeline(request).serve(request, CHAT_PATH)


async def completions(request: Request) -> Response:
    """POST /v1/completions"""
    return await _pipeline(request).serve(request, COMPLETIONS_PATH)


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``); 400 otherwise."""
    value = request.query_params.get(name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise InvalidRequest(f"{name} must be true or false, got {value!r}", param=name)


async def list_models(request: Request) -> Response:
    """GET /v1/models: the models served now; ``?all=true``: the whole catalog."""
    rt = get_runtime(request)
    rt.check_store_reached()  # 503 while this replica's view of the nodes is out of date
    return json_response(openai_models(rt.table, include_all=_flag(request, "all")))


async def retrieve_model(request: Request) -> Response:
    """GET /v1/models/{model_id}: one model (the openai SDK's ``models.retrieve``); 404
    ``model_not_found`` listing the models when the mesh has no such model. An id longer
    than any model's (``MAX_MODEL_ID_CHARS``, as a request's ``model`` is bounded) is not
    said back (found 2026-12-07, attack45: an id of 60 KB was echoed whole in the 404)."""
    rt = get_runtime(request)
    rt.check_store_reached()
    model_id = request.path_params["model_id"]
    entry = openai_model(rt.table, model_id)
    if entry is None:
        known = known_model_ids(rt.table)
        said = repr(model_id)
        if len(model_id) > MAX_MODEL_ID_CHARS:
            said = f"of {len(model_id)} characters (at most {MAX_MODEL_ID_CHARS}; not said back)"
        raise ModelNotFound(
            f"model {said} does not exist in the mesh; models: {', '.join(known)}",
            param="model",
            models=known,
        )
    return json_response(entry)


def install_gateway(app: FastAPI) -> None:
    """Add the ``/v1`` routes to ``app`` (its ``state.runtime`` must be set)."""
    app.state.pipeline = Pipeline(app.state.runtime)
    for path, endpoint in ((CHAT_PATH, chat_completions), (COMPLETIONS_PATH, completions)):
        if isinstance(app, HotRoutesApp):  # ahead of the middleware stack and router
            limit = app.state.runtime.settings.limits.max_body_bytes
            app.add_hot_route(path, endpoint, on_error=answer_exception, max_body_bytes=limit)
        else:
            app.add_route(path, endpoint, methods=["POST"])
    # an unknown query parameter refused (registry/strict_query.py: `?al=true` answered the
    # served list as if asked, found 2026-12-07, query42); the openai SDK sends none
    app.add_route("/v1/models", strict_endpoint(list_models, "/v1/models", "all"), methods=["GET"])
    # a model id may hold "/" (a custom model's, as Hugging Face names them)
    one = strict_endpoint(retrieve_model, "/v1/models/{model_id}")
    app.add_route("/v1/models/{model_id:path}", one, methods=["GET"])
