"""The node's HTTP app: the OpenAI API plus ``/mesh/...`` endpoints.

``create_node_app(service)`` builds a FastAPI app around a :class:`NodeService`.
The lifespan starts and stops the service (idempotently), so tests can start a
service themselves and serve the app through ``httpx.ASGITransport``, which
runs no lifespan.

- ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``
  (non-streamed, or ``stream: true`` SSE: chunks, a last chunk with
  ``"choices": []``, ``usage`` and ``mesh``, then ``data: [DONE]``; a failure
  after the stream started is one ``data: {"error": ...}`` event and no
  ``[DONE]``);
- ``GET /mesh/health`` (with the registry's health challenge in its headers, answered
  with the node key's signature of it: ``core/health_proof.py``);
- ``GET /mesh/info`` and ``GET /mesh/earnings`` (the node's earnings, asked of its
  registry with its operator token; 503 ``registry_unreachable`` when it does not
  answer) (loopback clients only);
- ``GET /metrics`` (Prometheus; loopback, the metrics token or ``--metrics-public``:
  ``metrics_http.py``; not served with ``Settings.metrics`` off);
- ``POST /mesh/admin/pause|resume|drain`` (loopback clients only).

"Loopback clients only" also refuses a request whose ``Host`` is not a name of this
machine (a rebound DNS name: 403 ``forbidden``, whether or not a browser sends fetch
metadata) and a browser's request from a web page of another site
(``core/browser_origin.py``: DNS rebinding, CSRF).

The two inference endpoints need the gateway's signature or session MAC
(``node/gateway_guard.py``: 401 without it; a node with ``register = false`` answers
loopback clients only). They are served ahead of the middleware stack and router
(``LLM_Mesh/hot_routes.py``: the same body limit and error answers).

A chat request may carry ``"mesh_continue": "<assistant text so far>"`` (the
gateway's mid-stream failover): the engine continues that partial answer and
sends only the new text. Engines without ``supports_continuation`` answer 400.

A request the gateway authenticated may carry ``"mesh_priority": "keyed"`` (its client has
an API key): it waits before the others in the admission queue (``core/priority.py``); a
standalone node's loopback client's field is ignored.

Every :class:`~LLM_Mesh.errors.MeshError` becomes its status and OpenAI error
body in one handler; 429 and 503 carry ``Retry-After``. A request body over
``NodeConfig.max_body_bytes`` (plus :data:`~LLM_Mesh.core.limits.GATEWAY_MARGIN_BYTES`, room
for the members the gateway adds to a client's body) is refused with 413 before it is read
(:class:`~LLM_Mesh.body_limit.BodyLimit`), once a route reads it (``on_read``): a request
refused on its headers (no gateway signature, an operator endpoint from another machine)
gets that refusal, its body unread. Every JSON answer (and the stream) carries
``X-Content-Type-Options: nosniff`` (:mod:`LLM_Mesh.json_answer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from LLM_Mesh import __version__
from LLM_Mesh.body_limit import BodyLimit
from LLM_Mesh.core import strict_json
from LLM_Mesh.core.client_retry import retry_header
from LLM_Mesh.core.limits import GATEWAY_MARGIN_BYTES, check_body, check_depth, limit_error
from LLM_Mesh.core.priority import PRIORITY_FIELD, is_keyed
from LLM_Mesh.core.retention import EARNINGS_MAX_DAYS
from LLM_Mesh.core.schemas import ChatCompletionRequest, CompletionRequest
from LLM_Mesh.core.validation import check_context
from LLM_Mesh.errors import (
    EngineError,
    InvalidRequest,
    MeshError,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
)
from LLM_Mesh.hot_routes import HotRoutesApp
from LLM_Mesh.json_answer import NOSNIFF, JSONAnswer, serve_openapi
from LLM_Mesh.logs import exception_words, safe_id
from LLM_Mesh.metrics_http import install_metrics
from LLM_Mesh.node import responses as R
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.gateway_guard import INFERENCE_PATHS
from LLM_Mesh.node.generation import Generation
from LLM_Mesh.node.metrics import NodeMetrics
from LLM_Mesh.node.operator_only import operator_refusal
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.node.telemetry import CLIENT_GONE, NodeRequest, NodeTelemetry

MESH_CONTINUE = "mesh_continue"

log = logging.getLogger("LLM_Mesh.node")


def engine_failure(engine: str, exc: BaseException) -> EngineError:
    """The answer to an engine's unexpected exception: its type only. Its words (a model
    file's path, an address) go to the operator's log, never to the gateway and its client
    (found 2026-12-03: ``ValueError: Failed to load model from file: /home/<user>/...``)."""
    # its words without what they quote (the prompt, the output: logs.exception_words)
    log.warning("the %s engine failed: %s: %s", engine, type(exc).__name__, exception_words(exc))
    return EngineError(f"the {engine} engine failed ({type(exc).__name__}; see the node's log)")


def unexpected_failure(exc: BaseException) -> EngineError:
    """A fault in the node's own request path: logged with its frames and type and its words
    without what they quote (the prompt, the output: ``logs.exception_words``)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unexpected error on a request: %s: %s\nTraceback (most recent call last):\n%s",
              type(exc).__name__, exception_words(exc), frames)  # fmt: skip
    return EngineError(f"the node failed ({type(exc).__name__}; see the node's log)")


def error_response(exc: MeshError) -> JSONAnswer:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, (Overloaded, ModelUnavailable)) and retry_after:
        headers["Retry-After"] = str(int(retry_after))
    headers.update(retry_header(exc.status, retry_after))  # core/client_retry.py
    return JSONAnswer(exc.to_openai(), status_code=exc.status, headers=headers)


def _invalid(exc: ValidationError) -> InvalidRequest:
    problems = []
    param: str | None = None
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        param = param or loc or None
        problems.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return InvalidRequest("invalid request: " + "; ".join(problems), param=param)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the request body is not valid JSON") from None
    try:  # the engine could not encode it for its tokenizer (a 500 blamed on this node)
        strict_json.refuse_lone_surrogates(raw, data)
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return data


class _GenerationStream(StreamingResponse):
    """A stream that always frees its generation, however the client leaves.

    The chunks are sent from the request's own task; a watcher task waits for the
    client's ``http.disconnect`` and sets the generation's cancel flag (the engine
    stops within one token, the stream then ends). Starlette's own streaming on
    ASGI < 2.4 runs an anyio task group per response instead, whose cancellation
    was a measured share of the node's CPU per streamed request (docs/benchmarks.md).
    """

    def __init__(self, gen: Generation, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.headers["Cache-Control"] = "no-cache"
        self.headers["X-Mesh-Node"] = gen.service.node_id
        self.headers.update(gen.said_headers())  # its prompt count (core/prompt_count.py)
        self.raw_headers.append(NOSNIFF)
        self._gen = gen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.ensure_future(_cancel_when_gone(receive, self._gen))
        try:
            await self.stream_response(send)
        except OSError:  # ASGI >= 2.4 servers raise on a client that is gone
            self._gen.cancel.set()
        finally:
            watcher.cancel()
            # no-op when the stream already finished; else stops the engine's generator now
            await self._gen.aclose(ok=False)
        if self.background is not None:
            await self.background()


async def _until_disconnected(receive: Receive) -> None:
    """Return once the client is gone: waits for ``http.disconnect`` (no polling).

    Call it after the request body was read: the server then sends nothing else
    before the disconnect (uvicorn also ends the wait when the response is complete).
    """
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel_when_gone(receive: Receive, gen: Generation) -> None:
    await _until_disconnected(receive)
    gen.cancel.set()


async def _open_unless_gone(
    request: Request,
    service: NodeService,
    req: GenerationRequest,
    request_id: str | None,
    keyed: bool = False,
) -> Generation | None:
    """``Generation.open`` (queue wait + first delta); ``None`` once the client has left.

    A client that leaves while its request waits for a slot (or for the first
    token) gives its place up at once instead of being generated for nobody. The open
    runs in the request's own task (the first token goes on without a hop through a task
    of its own); a watcher task waits for the client's ``http.disconnect`` and cancels
    that wait (``Generation.open`` gives back what it took when cancelled).
    """
    task = asyncio.current_task()
    opening = True
    left = False
    cancel = threading.Event()  # set first: the open's close counts it cancelled, not failed

    async def watch() -> None:
        nonlocal left
        await _until_disconnected(request.receive)
        if opening and task is not None:
            left = True
            cancel.set()
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await Generation.open(service, req, request_id, cancel, keyed)
    except asyncio.CancelledError:
        if not left or task is None:
            raise  # the server's cancel, not the watcher's
        uncancel = getattr(task, "uncancel", None)  # Python >= 3.11
        if uncancel is not None:
            uncancel()
        return None
    finally:
        opening = False
        watcher.cancel()


class _Handler:
    """The OpenAI endpoints, over one service; each request counted and logged once
    (``node/telemetry.py``)."""

    def __init__(self, service: NodeService, telemetry: NodeTelemetry) -> None:
        self.service = service
        self.telemetry = telemetry
        self.limits = service.settings.limits  # the node trusts no gateway's checks

    def check_depth(self, raw: bytes) -> None:
        """Refuse a body nested past ``max_json_depth`` before parsing it."""
        over = check_depth(raw, self.limits)
        if over is not None:
            raise limit_error(over)

    def parse(
        self, kind: Literal["chat", "completion"], data: dict[str, Any]
    ) -> tuple[GenerationRequest, ChatCompletionRequest | CompletionRequest]:
        body: ChatCompletionRequest | CompletionRequest
        over = check_body(data, self.limits)
        if over is not None:
            raise limit_error(over)
        try:
            if kind == "chat":
                body = ChatCompletionRequest.model_validate(data)
            else:
                body = CompletionRequest.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc) from None
        hosted = self.service.find_model(body.model)
        if hosted is None:
            ids = [m.id for m in self.service.models()]
            raise ModelNotFound(
                f"model {body.model!r} is not served by this node; it serves: {', '.join(ids)}",
                param="model",
                available=ids,
            )
        continue_text = self._continue_text(kind, data)
        if isinstance(body, ChatCompletionRequest):
            max_tokens = body.max_completion_tokens or body.max_tokens
            messages = [m.model_dump(mode="json", exclude_none=True) for m in body.messages]
            req = GenerationRequest(
                kind="chat",
                model=body.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                stop=body.stop_list(),
                seed=body.seed,
                continue_text=continue_text,
                top_logprobs=body.top_logprobs_wanted(),
                presence_penalty=body.presence_penalty,
                frequency_penalty=body.frequency_penalty,
            )
        else:
            req = GenerationRequest(
                kind="completion",
                model=body.model,
                prompt=body.prompt_text(),
                max_tokens=body.max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                stop=body.stop_list(),
                seed=body.seed,
                top_logprobs=body.top_logprobs_wanted(),
                presence_penalty=body.presence_penalty,
                frequency_penalty=body.frequency_penalty,
            )
        if hosted.context_length:
            check_context(
                req.text_for_estimate(), req.max_tokens or 1, hosted.context_length, body.model
            )
        return req, body

    def _continue_text(self, kind: str, data: dict[str, Any]) -> str | None:
        """``mesh_continue``: the assistant text a failed node already streamed."""
        value = data.get(MESH_CONTINUE)
        if value is None:
            return None
        if kind != "chat":
            raise InvalidRequest(
                f"{MESH_CONTINUE} is for /v1/chat/completions; for /v1/completions "
                "append the generated text to the prompt",
                param=MESH_CONTINUE,
            )
        if not isinstance(value, str):
            raise InvalidRequest(f"{MESH_CONTINUE} must be a string", param=MESH_CONTINUE)
        if not self.service.engine.supports_continuation:
            raise InvalidRequest(
                f"the {self.service.engine.name} engine does not support {MESH_CONTINUE}",
                param=MESH_CONTINUE,
            )
        return value

    async def handle(self, request: Request, kind: Literal["chat", "completion"]) -> Response:
        # the gateway's signed request id (the same id as its log line), if it is a sane one
        request_id = safe_id(
            request.headers.get("x-request-id") or request.headers.get("x-mesh-request-id")
        )
        seen = self.telemetry.begin(request_id, INFERENCE_PATHS[kind])
        try:
            return await self._handle(request, kind, request_id, seen)
        except MeshError as exc:
            seen.refused(exc)  # nothing when the generation's end was already counted
            raise
        except Exception as exc:  # a fault here: answered, not left to uvicorn, which logs
            err = unexpected_failure(exc)  # the whole message (it may quote the prompt)
            seen.refused(err)
            raise err from exc

    async def _handle(
        self,
        request: Request,
        kind: Literal["chat", "completion"],
        request_id: str | None,
        seen: NodeRequest,
    ) -> Response:
        # the gateway's headers before a byte of the body, then its MAC or signature of the
        # body (node/gateway_guard.py)
        host = request.client.host if request.client else None
        gateway = self.service.gateway
        path = INFERENCE_PATHS[kind]
        pre = gateway.precheck(request.headers, host, path)
        raw = await request.body()
        gateway.check_body(pre, path, raw, host)
        self.check_depth(raw)
        data = await _json_body(request)
        req, body = self.parse(kind, data)
        # keyed (core/priority.py): only as the gateway said it, in what it authenticated
        keyed = pre is not None and is_keyed(data.get(PRIORITY_FIELD))
        # the gateway's request id (signed with the request), which the node's receipt names
        request_id = request.headers.get("x-request-id") or request.headers.get("x-mesh-request-id")
        seen.known(req.model, body.stream, pre, req.continue_text is not None)
        try:
            gen = await _open_unless_gone(request, self.service, req, request_id, keyed)
        except MeshError:
            raise
        except Exception as exc:
            raise engine_failure(self.service.engine.name, exc) from exc
        if gen is None:
            seen.gone()
            return Response(status_code=CLIENT_GONE)  # nobody reads it
        echo = req.prompt if isinstance(body, CompletionRequest) and body.echo else None
        if body.stream:
            return _GenerationStream(gen, self._sse(gen, kind, echo, seen))
        return await self._whole(request, gen, kind, echo, seen)

    async def _whole(
        self, request: Request, gen: Generation, kind: str, echo: str | None, seen: NodeRequest
    ) -> JSONAnswer:
        watcher = asyncio.create_task(_cancel_when_gone(request.receive, gen))
        try:
            text = await gen.collect()
        except MeshError as exc:
            seen.ended(gen, status=exc.status, error=exc)
            await gen.aclose(ok=False)
            raise
        except Exception as exc:
            err = engine_failure(self.service.engine.name, exc)
            seen.ended(gen, status=err.status, error=err)
            await gen.aclose(ok=False)
            raise err from exc
        except BaseException:  # cancelled (shutdown): stop the engine, free the slot
            gen.close(ok=False)
            seen.ended(gen, status=CLIENT_GONE)
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        seen.ended(gen, status=200)  # before close: a cancel flag set now is the client's
        await gen.aclose(ok=True)
        answer_id, output = R.new_id(kind), (echo or "") + text
        body = R.answer_body(
            kind=kind,
            id=answer_id,
            created=int(time.time()),
            model=gen.req.model,
            text=output,
            finish_reason=gen.finish_reason or "stop",
            usage=gen.final_usage(),
            mesh=gen.mesh(gen.receipt(output, answer_id)),
            logprobs=gen.logprobs,
        )
        return JSONAnswer(body, headers={"X-Mesh-Node": self.service.node_id})

    async def _sse(
        self, gen: Generation, kind: str, echo: str | None, seen: NodeRequest
    ) -> AsyncIterator[bytes]:
        """The stream's bytes: one piece per batch of deltas the engine had ready together
        (one SSE event per token either way), so a loop that fell behind catches up in
        one write."""
        ids: dict[str, Any] = {
            "kind": kind,
            "id": R.new_id(kind),
            "created": int(time.time()),
            "model": gen.req.model,
        }
        text_chunk = R.TextChunks(**ids)
        ok = False
        error: MeshError | None = None
        out: list[bytes] = []  # written at the next yield
        try:
            if kind == "chat":
                out.append(R.sse(R.chunk(**ids, role=True, text="")))
            if echo:
                out.append(text_chunk(echo))
            async for batch in gen.batches():
                finished = False
                for delta in batch:
                    if delta.text:
                        out.append(text_chunk(delta.text))
                    if delta.finish_reason is not None:
                        text = None if kind == "chat" else ""
                        out.append(
                            R.sse(R.chunk(**ids, text=text, finish_reason=delta.finish_reason))
                        )
                        finished = True
                if out and not finished:  # the finish goes out with the usage chunk
                    yield b"".join(out)
                    out = []
            ok = True
            seen.ended(gen, status=200)  # before close: a cancel flag set now is the client's
            gen.close(ok=True)
            receipt = gen.receipt((echo or "") + gen.text, ids["id"])
            out.append(R.sse(R.final_chunk(**ids, usage=gen.final_usage(), mesh=gen.mesh(receipt))))
            out.append(R.DONE)
            yield b"".join(out)
        except MeshError as exc:
            error = exc
            yield b"".join([*out, R.sse(exc.to_openai())])
        except Exception as exc:
            error = engine_failure(self.service.engine.name, exc)
            yield b"".join([*out, R.sse(error.to_openai())])
        finally:
            seen.ended(gen, status=200, error=error)  # nothing if counted above
            await gen.aclose(ok=ok)


def create_node_app(service: NodeService, *, manage_lifespan: bool = True) -> FastAPI:
    """The node's FastAPI app around ``service``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = HotRoutesApp(
        title="LLM Mesh node",
        version=__version__,
        lifespan=lifespan if manage_lifespan else None,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, with nosniff
        default_response_class=JSONAnswer,  # nosniff on the routes' JSON answers
    )
    app.state.service = service
    serve_openapi(app)
    # a declared length over the limit is refused when a route reads the body: a route
    # that refuses on the headers (the gateway's, the operator's) answers first, unread;
    # max_body_bytes bounds the client's body, the margin is for the gateway's own members
    limit = service.config.max_body_bytes + GATEWAY_MARGIN_BYTES
    app.add_middleware(BodyLimit, max_bytes=limit, on_read=True)
    settings = service.settings
    metrics = NodeMetrics(service) if settings.metrics else None
    app.state.metrics = metrics
    telemetry = NodeTelemetry(service.node_id, service.clock, metrics, settings.log_requests,
                              service.served)  # fmt: skip
    handler = _Handler(service, telemetry)
    if metrics is not None:
        install_metrics(app, metrics.registry, settings)

    @app.exception_handler(MeshError)
    async def _mesh_error(_request: Request, exc: MeshError) -> JSONAnswer:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONAnswer:
        # the messages only: an error's ``input`` would echo the request's content
        problems = "; ".join(str(e.get("msg")) for e in exc.errors()[:3])
        return error_response(InvalidRequest(f"invalid request: {problems}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONAnswer:
        err = {
            "message": R.route_words(exc.status_code, str(exc.detail), request),
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found" if exc.status_code == 404 else f"http_{exc.status_code}",
        }
        return JSONAnswer({"error": err}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return R.models_body(service.models(), node_id=service.node_id, created=int(time.time()))

    async def chat_completions(request: Request) -> Response:
        return await handler.handle(request, "chat")

    async def completions(request: Request) -> Response:
        return await handler.handle(request, "completion")

    async def on_error(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, MeshError):
            return error_response(exc)
        raise exc  # the server answers 500 and logs it, as FastAPI's stack would

    for path, endpoint in ((INFERENCE_PATHS["chat"], chat_completions),
                           (INFERENCE_PATHS["completion"], completions)):  # fmt: skip
        app.add_hot_route(path, endpoint, on_error=on_error, max_body_bytes=limit,
                          on_read=True)  # fmt: skip

    @app.get("/mesh/health")
    async def health(request: Request) -> JSONAnswer:
        """The node's state; with the registry's health challenge, signed by the node key
        (``X-Mesh-Health-Key``/``-Signature``: ``core/health_proof.py``)."""
        service.refresh_availability()
        return JSONAnswer(service.health(), headers=service.health_proof(request.headers))

    @app.get("/mesh/info", response_model=None)
    async def info(request: Request) -> dict[str, Any] | JSONAnswer:
        # hardware and counters: the operator's
        refusal = operator_refusal(request, settings.local_names)
        return refusal if refusal is not None else service.info()

    @app.get("/mesh/earnings", response_model=None)
    async def earnings(request: Request, days: int = 30) -> dict[str, Any] | JSONAnswer:
        """This node's earnings, asked of its registry with its operator token (503
        ``registry_unreachable`` when the registry does not answer); the operator's."""
        refusal = operator_refusal(request, settings.local_names)
        if refusal is not None:
            return refusal
        if not 1 <= days <= EARNINGS_MAX_DAYS:
            raise InvalidRequest(f"days is 1 to {EARNINGS_MAX_DAYS}", param="days")
        return await service.earnings(days)

    @app.post("/mesh/admin/{action}")
    async def admin(action: str, request: Request) -> JSONAnswer:
        refusal = operator_refusal(request, settings.local_names)
        if refusal is not None:
            return refusal
        actions = {"pause": service.pause, "resume": service.resume, "drain": service.drain}
        if action not in actions:
            raise InvalidRequest(
                f"unknown admin action {action!r}; use pause, resume or drain", param="action"
            )
        actions[action]()
        return JSONAnswer(service.health())

    return app
