"""The OpenAPI document (``/openapi.json``, ``/docs``): ``/mesh`` and ``/v1`` together.

FastAPI documents the ``/mesh`` routes itself, but not the ``/v1`` routes: plain
Starlette routes (the hot path, no dependency injection). Here the ``/v1`` operations are
written from pydantic models (the request models the gateway validates with, the answer
shapes below) and merged into FastAPI's document, made true to what the app answers:

- request validation fails with 400 in OpenAI's error shape (the one handler in
  :mod:`~LLM_Mesh.registry.errors`), never FastAPI's 422;
- a body over the limit gets 413 (:class:`~LLM_Mesh.body_limit.BodyLimit`);
- an unknown ``node_id`` gets 404 ``unknown_node``;
- the listings that return plain dicts get their schemas.

A stream (``"stream": true``) is ``text/event-stream``: ``data:`` events, each a
``ChatCompletionChunk`` / ``CompletionChunk``; the last chunk has ``"choices": []``,
``usage`` and ``mesh``; then ``data: [DONE]``. A failure after the stream began
is one ``data: {"error": ...}`` event. ``tests/registry/test_openapi.py`` fuzzes
the whole document with schemathesis against the app.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from LLM_Mesh.core.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    ForgottenNode,
    Heartbeat,
    HostedModel,
    MeshMeta,
    NodeRegistration,
    NodeView,
)
from LLM_Mesh.json_answer import serve_openapi
from LLM_Mesh.registry.api_docs import install_api_docs
from LLM_Mesh.registry.strict_query import document_refusals

REF = "#/components/schemas/{model}"


class _Open(BaseModel):
    """Answer shapes: the fields named are there; others may be too."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


# --- errors ---------------------------------------------------------------------------


class ErrorBody(_Open):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Open):
    """OpenAI's error shape. 429/503 carry ``retry_after`` (and ``Retry-After``)."""

    error: ErrorBody


# --- /v1 answers ----------------------------------------------------------------------


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | None = None


class ChatChoice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None = None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None
    mesh: MeshMeta


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None = None


class Completion(_Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    mesh: MeshMeta


class ChunkDelta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(_Open):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a chat stream (the last one: no choices, ``usage``, ``mesh``)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    mesh: MeshMeta | None = None


class CompletionChunk(_Open):
    """One ``data:`` event of a completion stream (the last one: no choices, ``usage``, ``mesh``)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    mesh: MeshMeta | None = None


class ModelPricing(_Open):
    """What a model costs: whole micro-NetworkTokens per 1,000 tokens (core/pricing.py)."""

    prompt_per_1k: int = Field(description="µNT per 1,000 prompt tokens")
    completion_per_1k: int = Field(description="µNT per 1,000 completion tokens")
    unit: Literal["micro-NetworkToken"]


class ServedModel(_Open):
    """A ``/v1/models`` entry: OpenAI's model object plus what the mesh knows."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    available: bool = Field(description="a healthy node hosts it (loaded or able to load it)")
    nodes: int = Field(description="healthy nodes hosting it")
    nodes_simulated: int = Field(description="of those, how many run a simulated engine")
    simulated: bool = Field(description="served, and only by simulated nodes")
    custom: bool
    context_length: int = Field(description="served now: the largest a healthy node declares")
    catalog_context_length: int | None = Field(description="the catalog's (none: custom)")
    pricing: ModelPricing


class ModelList(_Open):
    object: Literal["list"]
    data: list[ServedModel]


# --- /mesh answers FastAPI cannot see (the routes return dicts) -----------------------


class MeshModel(_Open):
    """A ``/mesh/models`` entry: the catalog entry plus its live status."""

    id: str
    name: str
    size_bytes: int
    quantization: str
    context_length: int = Field(description="served now, as /v1/models says it")
    catalog_context_length: int | None = Field(description="the catalog's (none: custom)")
    specialties: list[str]
    prompt_price_per_1k: int
    completion_price_per_1k: int
    pricing: ModelPricing
    custom: bool
    available: bool
    nodes: int
    nodes_loaded: int
    nodes_simulated: int
    simulated: bool


class MeshModelList(_Open):
    models: list[MeshModel]


class NodeList(_Open):
    nodes: list[NodeView | ForgottenNode]  # ForgottenNode: ?all=true's stored rows only


class HeartbeatAccepted(_Open):
    ok: bool
    heartbeat_interval_s: float
    # the gateway's id: a node that pinned another registers again (a rotated key)
    registry_id: str | None = None
    # the gateway sends X-Mesh-Body-SHA256, as the registration's answer says (a node that
    # missed that answer learns it here); None from an older registry
    gateway_body_sha256: bool | None = None


class CheckResult(_Open):
    node_id: str
    url: str
    ok: bool
    latency_ms: float
    error: str | None = None


class HealthCheckResults(_Open):
    results: list[CheckResult]


class DemandRow(_Open):
    model: str
    requests_waiting: int
    requests_refused: int
    nodes_serving: int
    nodes_loaded: int


class DemandReport(_Open):
    window_s: float
    models: list[DemandRow]


class Healthz(_Open):
    status: str  # "ok"; "degraded" (settlement, failing_s, detail); 503 "store_unreachable"


_MODELS: list[type[BaseModel]] = [
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ChatCompletion,
    Completion,
    ChatCompletionChunk,
    CompletionChunk,
    ModelList,
    MeshModelList,
    NodeList,
    HostedModel,
    NodeRegistration,
    Heartbeat,
    HeartbeatAccepted,
    HealthCheckResults,
    DemandReport,
    Healthz,
]

# Examples the docs show (and schemathesis starts from): a model the mesh serves.
_EXAMPLE_MODEL = "gemma-3-270m"
_CHAT_EXAMPLE = {
    "model": _EXAMPLE_MODEL,
    "messages": [{"role": "user", "content": "Say hi"}],
    "max_tokens": 16,
}
_COMPLETION_EXAMPLE = {"model": _EXAMPLE_MODEL, "prompt": "def fibonacci(n):", "max_tokens": 16}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("ErrorResponse")}},
    }
    out["headers"] = {"x-should-retry": _SHOULD_RETRY}
    if retry_after:
        out["headers"]["Retry-After"] = {
            "description": "seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 0},
        }
    return out


# every error answer's advice to OpenAI's SDKs, which obey it (core/client_retry.py)
_SHOULD_RETRY = {
    "description": (
        "`false`: a retry cannot help soon (the request's own fault; no node serves "
        "the model within its constraints; a 504: the request used its whole deadline; "
        "a 502 with no node back soon; a 500); `true`: a retry after `Retry-After` can "
        "(a 502's: when a node takes it: one not tried, or a tried one back from its rest)"
    ),
    "schema": {"type": "string", "enum": ["true", "false"]},
}


E400 = "invalid request (`param` names the field)"
E413 = "the request body is over the size limit (`request_too_large`)"


def _sse_event(chunk: str) -> dict[str, Any]:
    """One server-sent event of a stream (OpenAPI 3.1: ``schema`` describes each event)."""
    return {
        "type": "object",
        "description": (
            f"one `data:` event: a `{chunk}`, an `ErrorResponse` (the stream failed), "
            "or `[DONE]` (the end)"
        ),
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"anyOf": [_ref(chunk), _ref("ErrorResponse")]},
                    },
                ]
            },
        },
    }


def _generation(path: str, request: str, answer: str, chunk: str, example: Any) -> dict[str, Any]:
    """One ``/v1`` generation operation."""
    what = "chat completion" if "chat" in path else "completion"
    return {
        "post": {
            "tags": ["OpenAI API"],
            "summary": f"Create a {what}",
            "operationId": f"create_{what.replace(' ', '_')}",
            "description": (
                "OpenAI-compatible; the mesh picks a healthy node serving `model` and fails over "
                "to others. Mesh extensions in the body: `avoid_regions`, `allow_nodes`, "
                "`deny_nodes`, `strict_regions`, `trusted_only`, `allow_prompt_keeping` (nodes that "
                "may keep prompts are held out without it), `mesh_wait_s` (or header "
                "`X-Mesh-Wait`). An `Idempotency-Key` or `X-Request-Id` header runs the "
                "request at most once; every answer and error names its request id in "
                "`X-Request-Id`. With `stream: true` the answer is `text/event-stream`: `data:` "
                f"events, each a `{chunk}`, the last with `usage` and `mesh`, then `data: [DONE]`."
            ),
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": desc,
                }
                for name, desc in (
                    (
                        "Idempotency-Key",
                        "run this request at most once (up to 128 printable characters; "
                        "a longer or unprintable value is ignored)",
                    ),
                    ("X-Request-Id", "as Idempotency-Key"),
                )
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _ref(request),
                        "examples": {
                            "basic": {"value": example},
                            "stream": {"value": {**example, "stream": True}},
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": (
                        "the answer (a stream with `stream: true`); `mesh.receipt` (a stream: "
                        "in its last chunk) is the signed receipt: the node's signature of "
                        "what it generated, countersigned by the registry (check it offline "
                        "with `llm-mesh receipt verify`)"
                    ),
                    "headers": {
                        "X-Mesh-Receipt": {
                            "description": (
                                "the receipt (non-stream answers): base64url of its JSON"
                            ),
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "application/json": {"schema": _ref(answer)},
                        "text/event-stream": {"schema": _sse_event(chunk)},
                    },
                },
                "400": _error(
                    E400 + "; or the prompt does not fit the model's context; or a field "
                    "no engine does (`unsupported_parameter`: tools, response_format other "
                    "than text, logit_bias, best_of > 1, suffix, logprobs on a stream, an image "
                    "content part, reasoning_effort, a field the endpoint does not have...)"
                ),
                "401": _error(
                    "a wrong, malformed or revoked API key (`invalid_api_key`); send no "
                    "`Authorization` header (or `Bearer anonymous`) to be served without a key"
                ),
                "404": _error("no such model (`model_not_found`; `models` lists them)"),
                "409": _error("this request id already ran (`duplicate_request`)"),
                "413": _error(E413),
                "429": _error(
                    "the client is over its rate limit (`rate_limit_exceeded`, with "
                    "`x-ratelimit-*` headers), or every node serving the model is full "
                    "(`overloaded`; anonymous requests are refused first)",
                    retry_after=True,
                ),
                "502": _error(
                    "the nodes tried failed (`upstream_error`; `Retry-After` when a node "
                    "would take it: one not tried, or a tried one back)",
                    retry_after=True,
                ),
                "503": _error(
                    "no healthy node serves the model now (`model_unavailable`)", retry_after=True
                ),
                "504": _error("no answer within the deadline (`upstream_timeout`; no retry)"),
            },
        }
    }


def _v1_paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": _generation(
            "chat", "ChatCompletionRequest", "ChatCompletion", "ChatCompletionChunk", _CHAT_EXAMPLE
        ),
        "/v1/completions": _generation(
            "completions", "CompletionRequest", "Completion", "CompletionChunk", _COMPLETION_EXAMPLE
        ),
        "/v1/models": {
            "get": {
                "tags": ["OpenAI API"],
                "summary": "List models",
                "operationId": "list_models",
                "description": (
                    "The models a healthy node serves now (`simulated`: only simulated nodes "
                    "serve it; `context_length`: the context served now, which a request must "
                    "fit); `all=true`: the whole catalog, served or not."
                ),
                "parameters": [
                    {
                        "name": "all",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean", "default": False},
                        "description": "list every catalog model, served or not",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the models",
                        "content": {"application/json": {"schema": _ref("ModelList")}},
                    },
                    "400": _error("`all` is not true or false"),
                },
            }
        },
        "/v1/models/{model_id}": {
            "get": {
                "tags": ["OpenAI API"],
                "summary": "Retrieve a model",
                "operationId": "retrieve_model",
                "description": "One catalog model, served now or not (`available` says).",
                "parameters": [
                    {
                        "name": "model_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the model",
                        "content": {"application/json": {"schema": _ref("ServedModel")}},
                    },
                    "404": _error("the mesh has no such model (`model_not_found`)"),
                    "503": _error("this replica's view of the nodes is out of date"),
                },
            }
        },
    }


# 200 schemas for the /mesh routes that return plain dicts
_MESH_ANSWERS = {
    ("/mesh/nodes", "get"): "NodeList",
    ("/mesh/models", "get"): "MeshModelList",
    ("/mesh/demand", "get"): "DemandReport",
    ("/mesh/health-check", "post"): "HealthCheckResults",
    ("/mesh/nodes/{node_id}/heartbeat", "post"): "HeartbeatAccepted",
    ("/healthz", "get"): "Healthz",
}


# request bodies of the signed node messages (read raw: the signature covers the bytes)
_MESH_BODIES = {("/mesh/nodes", "post"): "NodeRegistration",
                ("/mesh/nodes/{node_id}/heartbeat", "post"): "Heartbeat"}  # fmt: skip
# node messages and admin operations: who may send them (docs/security.md)
_SIGNED = {("/mesh/nodes", "post"), ("/mesh/nodes/{node_id}/heartbeat", "post"),
           ("/mesh/nodes/{node_id}", "delete")}  # fmt: skip
_ADMIN = {("/mesh/health-check", "post"), ("/mesh/canary/run", "post")}
_ADMIN |= {("/mesh/usage-audit", "get")}


def _fix_fastapi_paths(paths: dict[str, Any]) -> None:
    """Make FastAPI's generated operations say what the app really answers."""
    for path, ops in paths.items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None or "requestBody" in op:
                responses["400"] = _error(E400)
            if "requestBody" in op:
                responses["413"] = _error(E413)
            if "{node_id}" in path:
                responses["404"] = _error("no such node (`unknown_node`): register again")
            body = _MESH_BODIES.get((path, method))
            if body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(body)}},
                }
            if (path, method) in _SIGNED:
                responses["401"] = _error(
                    "not signed by the node's key, a stale or replayed message, or no valid "
                    "operator token (`invalid_signature`, `stale_message`, `replayed_message`, "
                    "`invalid_credential`)"
                )
                responses["403"] = _error(
                    "another node's id, a revoked node or operator, a refused node address, "
                    "or a node url the transport rule refuses (`node_id_mismatch`, `revoked`, "
                    "`node_address_refused`; `forbidden` with `reason` `tls_required` or "
                    "`plain_http_remote`: http:// on another machine)"
                )
            if (path, method) in _ADMIN:
                responses["401"] = _error("no or a wrong admin key (`invalid_credential`)")
            answer = _MESH_ANSWERS.get((path, method))
            ok = responses.get("200")
            if answer is not None and ok is not None:
                ok["content"] = {"application/json": {"schema": _ref(answer)}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app`` with the ``/v1`` operations and the fixes above."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=(
            "The OpenAI API under `/v1` (any OpenAI client works; answers add a `mesh` "
            "object: node, engine, `simulated`, latency, cost) and the registry under `/mesh`. "
            'Errors are OpenAI\'s shape: `{"error": {"message", "type", "param", "code"}}`.'
        ),
        routes=app.routes,
    )
    paths: dict[str, Any] = doc.setdefault("paths", {})
    _fix_fastapi_paths(paths)
    paths.update(_v1_paths())
    document_refusals(paths, _error)  # 400: an unknown query parameter (strict_query.py)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=REF)
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document at ``/openapi.json`` (built once, on first use;
    with ``nosniff``: :func:`~LLM_Mesh.json_answer.serve_openapi`) and Swagger UI at
    ``/docs`` from the registry's own files (:mod:`.api_docs`). ``app`` is made with
    ``openapi_url=None`` and ``docs_url=None``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    serve_openapi(app)
    install_api_docs(app)
