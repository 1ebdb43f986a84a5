"""Front an OpenAI-compatible server the operator already runs.

llama.cpp's server, vLLM, Ollama, llama-cpp-python's server: chat is
forwarded as chat (the upstream applies its own chat template), completions
as completions, always streaming. Usage comes from the upstream when it sends
it (``stream_options.include_usage``); otherwise the deltas are counted and
the prompt estimated. The sampling fields (``max_tokens``, ``temperature``, ``top_p``,
``seed``, ``presence_penalty``, ``frequency_penalty``: ``_SAMPLING``) and ``stop`` are
forwarded; the upstream applies them. ``base_url`` is the upstream's API root; ``/v1`` is
appended when missing. The HTTP client is passed in (one per process).

Chat messages are forwarded as the text this node counts and charges (``message_text``,
what the llama.cpp engine reads too): a role and a string content, nothing else. A content
part of another type (``image_url``, ``input_audio``, ``file``, ``video_url``) or a field
the node does not know never reaches the upstream (found 2026-12-03: forwarded as sent, so
any client of the mesh, or the gateway, could make a media-fetching upstream (vLLM, a
llama.cpp server with a projector) GET ``http://169.254.169.254/...`` or a LAN address
from the operator's network, and run prompts outside the node's context check).

A request's failure says no more than what failed (``the node's upstream failed
(ConnectError)``, ``... answered HTTP 500``): the upstream's address, credentials in its
URL and its own error body go to the operator's log (the URL without its credentials),
never into the answer, which the gateway passes on to its client (found 2026-12-03: the
answer named ``http://user:password@10.x.x.x:8000/v1`` and quoted the upstream's 5xx body).
A refusal (400, 404, 429, 503) or an ``error`` event in the stream keeps the upstream's words.

No mid-stream continuation: an OpenAI chat API has no way to say "go on with
this partial assistant turn", so models report ``continuation: false`` and a
request with ``mesh_continue`` is refused (400).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from LLM_Mesh.core.confusable import lookalike_problem
from LLM_Mesh.core.schemas import MAX_MODELS_PER_NODE, HostedModel
from LLM_Mesh.errors import (
    EngineError,
    InvalidRequest,
    MeshError,
    ModelNotFound,
    UpstreamError,
    UpstreamTimeout,
    error_from_payload,
)
from LLM_Mesh.logs import log_text
from LLM_Mesh.node.engines.base import (
    CancelFlag,
    Delta,
    Engine,
    GenerationRequest,
    Usage,
    message_text,
)

log = logging.getLogger("LLM_Mesh.node")


def shown_url(url: str) -> str:
    """``url`` without the credentials it may carry (``http://user:pw@host``): for logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(the upstream URL)"
    if "@" not in parts.netloc:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def api_root(base_url: str) -> str:
    """``http://h:p`` or ``http://h:p/v1`` → ``http://h:p/v1``."""
    root = base_url.rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


class OpenAIUpstreamEngine(Engine):
    """Streams from ``{base_url}/v1/chat/completions`` and ``/v1/completions``."""

    name = "openai"
    simulated = False

    def __init__(
        self,
        base_url: str,
        *,
        http_client: httpx.AsyncClient,
        api_key: str | None = None,
        models: Sequence[str] = (),
        context_length: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must be an http(s) URL, got {base_url!r}")
        self.base_url = api_root(base_url)
        self.shown_url = shown_url(self.base_url)  # for logs and the operator's errors
        self._client = http_client
        self._api_key = api_key
        self._ids = list(dict.fromkeys(models))
        self._context_length = context_length
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def start(self) -> None:
        """Ask the upstream for its models when none were configured."""
        if self._ids:
            return
        try:
            r = await self._client.get(
                f"{self.base_url}/models", headers=self._headers(), timeout=self._timeout
            )
            r.raise_for_status()
            data = r.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise EngineError(
                f"cannot list the models of {self.shown_url}: {log_text(exc, 300)}"
            ) from exc
        ids = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        if len(ids) > MAX_MODELS_PER_NODE:  # the registry would refuse the registration
            raise EngineError(
                f"the upstream at {self.shown_url} lists {len(ids)} models; a node registers "
                f"at most {MAX_MODELS_PER_NODE}: name the ones to serve in `models`"
            )
        for model_id in ids:
            problem = lookalike_problem(model_id)
            if problem is not None:  # the registry would refuse the whole registration
                raise EngineError(f"the upstream at {self.shown_url} lists {problem}")
        self._ids = ids
        if not self._ids:
            raise EngineError(f"the upstream at {self.shown_url} serves no models")

    def models(self) -> list[HostedModel]:
        return [
            HostedModel.model_validate(
                {
                    "id": m,
                    "engine": self.name,
                    "context_length": self._context_length,
                    "continuation": False,
                    "load_time_s": 0.0,
                }
            )
            for m in self._ids
        ]

    def body(self, req: GenerationRequest, *, include_usage: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "stream": True}
        if req.kind == "chat":
            body["messages"] = [_text_only(m) for m in req.messages or []]
        else:
            body["prompt"] = req.prompt
        for key in _SAMPLING:
            value = getattr(req, key)
            if value is not None:
                body[key] = value
        if req.stop:
            body["stop"] = list(req.stop)
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        if req.model not in self._ids:
            raise ModelNotFound(f"model {req.model!r} is not served here", available=self._ids)
        if req.continue_text is not None:
            raise InvalidRequest(
                "mesh_continue is not supported by the openai engine", param="mesh_continue"
            )
        path = "/chat/completions" if req.kind == "chat" else "/completions"
        url = self.base_url + path
        include_usage = True
        for attempt in range(2):
            try:
                async with self._client.stream(
                    "POST",
                    url,
                    json=self.body(req, include_usage=include_usage),
                    headers=self._headers(),
                    timeout=self._timeout,
                ) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        if attempt == 0 and _rejects_stream_options(resp):
                            include_usage = False
                            continue
                        raise _error_of(resp, self.shown_url)
                    async for delta in self._read(resp, req, cancel):
                        yield delta
                    return
            except MeshError:
                raise
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
                log.warning("the upstream at %s failed: %s: %s", self.shown_url, kind,
                            log_text(exc, 300))  # fmt: skip
                if isinstance(exc, httpx.TimeoutException):
                    raise UpstreamTimeout(f"the node's upstream timed out ({kind})") from exc
                raise EngineError(f"the node's upstream failed ({kind})") from exc

    async def _read(
        self, resp: httpx.Response, req: GenerationRequest, cancel: CancelFlag
    ) -> AsyncIterator[Delta]:
        finish: str | None = None
        usage: Usage | None = None
        pieces = 0
        async for line in resp.aiter_lines():
            if cancel.is_set():
                return  # leaving the `async with` closes the upstream connection
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                # its text may be the output: neither logged nor answered
                log.warning("the upstream at %s sent a chunk that is not JSON", self.shown_url)
                raise UpstreamError("the node's upstream sent a chunk that is not JSON") from None
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                raise error_from_payload(502, chunk)
            if isinstance(chunk.get("usage"), dict):
                u = chunk["usage"]
                usage = Usage(
                    int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
                )
            for choice in chunk.get("choices") or []:
                text = _choice_text(choice, req.kind)
                finish = choice.get("finish_reason") or finish
                if text:
                    pieces += 1
                    yield Delta(text)
        if cancel.is_set():
            return
        if usage is None:
            prompt = req.text_for_estimate()
            usage = Usage(math.ceil(len(prompt) / 4), pieces)
        yield Delta("", finish or "stop", usage)


_SAMPLING = ("max_tokens", "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


def _text_only(message: dict[str, Any]) -> dict[str, str]:
    """A chat message as the upstream gets it: its role and its text (module docstring)."""
    role = message.get("role")
    return {"role": role if isinstance(role, str) else "user", "content": message_text(message)}


def _choice_text(choice: Any, kind: str) -> str:
    if not isinstance(choice, dict):
        return ""
    if kind == "chat":
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "") if isinstance(delta, dict) else ""
    return str(choice.get("text") or "")


def _rejects_stream_options(resp: httpx.Response) -> bool:
    return resp.status_code in (400, 422) and "stream_options" in resp.text


def _error_of(resp: httpx.Response, shown: str) -> MeshError:
    """A refusal (400, 404, 429, 503) with the upstream's words; any other status says its
    number only (the body, a traceback or a proxy's page, may quote the request: not logged)."""
    if resp.status_code in (400, 404, 429, 503):
        try:
            payload = resp.json()
        except ValueError:
            payload = resp.text
        return error_from_payload(resp.status_code, payload)
    log.warning("the upstream at %s answered HTTP %d", shown, resp.status_code)
    return UpstreamError(f"the node's upstream answered HTTP {resp.status_code}")
