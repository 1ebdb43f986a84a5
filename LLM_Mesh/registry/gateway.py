"""The OpenAI API the mesh offers: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

Each request is checked before any node is called: the body must be a JSON
object (400), valid for the OpenAI request model (400 naming the field), for a
model the catalog or some node knows (404 listing the models), that a healthy
node serves now (503 with ``Retry-After`` and the models that are up), and that
fits the chosen node's context (400). Then :mod:`forwarding` or
:mod:`streaming` sends it on. The mesh extensions (``avoid_regions``,
``allow_nodes``, ``deny_nodes``, ``mesh_wait_s`` / ``X-Mesh-Wait``:
:mod:`extensions`) are read here and stripped from what nodes receive. A
client-supplied ``Idempotency-Key`` or ``X-Request-Id`` runs at most once
(:mod:`idempotency`).

The POST endpoints are plain Starlette routes (no dependency injection): they
are the hot path.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.schemas import ChatCompletionRequest, CompletionRequest
from LLM_Mesh.errors import InvalidRequest, MeshError, ModelNotFound, PayloadTooLarge
from LLM_Mesh.registry import forwarding, streaming
from LLM_Mesh.registry.errors import error_response, invalid_from_pydantic, json_response
from LLM_Mesh.registry.extensions import read_extensions, strip_extensions
from LLM_Mesh.registry.listing import CUSTOM_PRICE_PER_1K, known_model_ids, openai_models
from LLM_Mesh.registry.runtime import Runtime, get_runtime, new_request_id

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MAX_BODY_BYTES = 8 * 1024 * 1024


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ``InvalidRequest`` (413 ``PayloadTooLarge``)."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the request body is larger than {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES
        )
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _client_id(request: Request) -> str | None:
    """The client's own request id (``Idempotency-Key`` or ``X-Request-Id``), if usable."""
    headers = request.headers
    given = headers.get("idempotency-key") or headers.get("x-request-id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return None


def build_job(
    rt: Runtime, request: Request, raw: bytes, path: str, started: float
) -> forwarding.Job:
    """Validate a request body into a :class:`~forwarding.Job` (raises 400/404)."""
    body = parse_json_object(raw)
    parsed: ChatCompletionRequest | CompletionRequest
    try:
        if path == CHAT_PATH:
            parsed = ChatCompletionRequest.model_validate(body)
            prompt_text = "\n".join(m.text() for m in parsed.messages)
        else:
            parsed = CompletionRequest.model_validate(body)
            prompt_text = parsed.prompt_text()
    except ValidationError as exc:
        raise invalid_from_pydantic(exc) from None
    ext = read_extensions(body, request.headers.get("x-mesh-wait"))
    if ext.present:
        body = strip_extensions(body)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    model = parsed.model
    spec = get_spec(model)
    if spec is None and not rt.table.hosts(model):
        known = known_model_ids(rt.table)
        raise ModelNotFound(
            f"model {model!r} does not exist in the mesh; models: {', '.join(known)}",
            param="model",
            models=known,
        )
    return forwarding.Job(
        path=path,
        model=model,
        body=body,
        raw=raw,
        stream=parsed.stream,
        prompt_text=prompt_text,
        max_tokens=parsed.effective_max_tokens(0),
        price_per_1k=spec.price_per_1k_tokens if spec is not None else CUSTOM_PRICE_PER_1K,
        catalog_context=spec.context_length if spec is not None else None,
        request_id=_client_id(request) or new_request_id(),
        started=started,
        deadline=started + rt.settings.request_timeout_s,
        ext=ext,
    )


async def _serve(request: Request, path: str) -> Response:
    rt = get_runtime(request)
    started = rt.clock()
    raw = await request.body()
    job = build_job(rt, request, raw, path, started)
    key = _client_id(request)
    if key is None:
        if job.stream:
            return await streaming.stream(rt, job)
        return await forwarding.complete(rt, job)
    return await _once(rt, job, f"{path} {key}")


async def _once(rt: Runtime, job: forwarding.Job, key: str) -> Response:
    """Run ``job`` unless ``key`` already ran or runs (see :mod:`idempotency`)."""
    cache = rt.idempotency
    earlier = await cache.begin(key, job.stream)
    if earlier is not None:
        return earlier
    if job.stream:
        try:
            resp = await streaming.stream(rt, job)
        except BaseException:
            cache.abandon(key)
            raise
        cache.finish(key, None)
        return resp
    result: Response | None = None
    try:
        result = await forwarding.complete(rt, job)
    except MeshError as exc:
        result = error_response(exc)
    finally:
        cache.finish(key, result)
    return result


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions"""
    return await _serve(request, CHAT_PATH)


async def completions(request: Request) -> Response:
    """POST /v1/completions"""
    return await _serve(request, COMPLETIONS_PATH)


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
    table = get_runtime(request).table
    return json_response(openai_models(table, include_all=_flag(request, "all")))


def install_gateway(app: FastAPI) -> None:
    """Add the ``/v1`` routes to ``app``."""
    app.add_route(CHAT_PATH, chat_completions, methods=["POST"])
    app.add_route(COMPLETIONS_PATH, completions, methods=["POST"])
    app.add_route("/v1/models", list_models, methods=["GET"])
