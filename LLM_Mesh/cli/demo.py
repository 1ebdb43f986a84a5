"""The demo request and ``llm-mesh ask``: send one request, print answer and metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from rich.console import Console

from LLM_Mesh.cli.render import metrics_line, metrics_table, shown, terminal_text
from LLM_Mesh.client import MeshClient
from LLM_Mesh.client_replicas import ReplicaMemory
from LLM_Mesh.config import Settings
from LLM_Mesh.core.answer_bound import BASE_BYTES, TOKEN_BYTES
from LLM_Mesh.core.answer_text import chunk_text
from LLM_Mesh.core.client_retry import ASK_ADVICE, CLI_NO_KEY_HINT
from LLM_Mesh.core.limits import unsent_too_large
from LLM_Mesh.core.receipt_verify import saved_form
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import (
    DuplicateRequest,
    MeshError,
    ModelUnavailable,
    UpstreamError,
    error_from_payload,
)
from LLM_Mesh.plain_http import PlainHttpNotice


def text_bound(max_tokens: Any) -> int | None:
    """The most text (characters) an honest stream of ``max_tokens`` tokens carries: a
    token's text is a few characters, ``TOKEN_BYTES`` (256) several times an honest one's,
    as the gateway bounds a node's answer (``core/answer_bound.py``); None without a limit
    (found 2026-12-05: ``ask --stream`` gathered and printed whatever a gateway streamed
    within the stream's 30 min)."""
    if type(max_tokens) is not int or max_tokens < 1:
        return None
    return BASE_BYTES + max_tokens * TOKEN_BYTES


def flag_named(exc: MeshError, max_tokens: int) -> MeshError:
    """``exc`` with the request's ``max_tokens=N`` said as the flag the user typed,
    ``--max-tokens N`` (found 2026-12-05, polish32: a refusal of ``ask --max-tokens`` above
    the model's context named the API's field, not the option)."""
    field = f"max_tokens={max_tokens}"
    if exc.param != "max_tokens" and field not in exc.message:
        return exc
    text = exc.message.replace(field, f"--max-tokens {max_tokens}")
    if text == exc.message:  # named by its field alone (``max_tokens: ...``): the option
        text = f"--max-tokens {max_tokens}: {text.removeprefix('max_tokens: ')}"
    return MeshError(text, param=exc.param)


def rerun_named(exc: MeshError) -> MeshError:
    """A gateway's 409 ``duplicate_request`` said as what ``ask`` can do: it takes no id
    (it makes one a run, kept over its tries at every replica), so "send a new id" is to run
    it again (found 2026-12-07, replica41: a request in flight on a replica that was killed
    ended with the API's advice). Any other error is returned as it is."""
    if not isinstance(exc, DuplicateRequest):
        return exc
    text = exc.message.replace("send a new id to run it again", "").rstrip(" :;,.")
    return DuplicateRequest(
        f"{text}; each run of llm-mesh ask sends a new id: run llm-mesh ask again to run it again",
        param=exc.param,
        **exc.extra,
    )


async def stream_request(
    console: Console,
    registry_url: str,
    path: str,
    body: dict[str, Any],
    *,
    api_key: str | None = None,
    ca_file: str | None = None,
    stream_max_s: float | None = None,
    http_client: httpx.AsyncClient | None = None,
    client: MeshClient | None = None,
) -> tuple[str, dict[str, Any], float | None, float]:
    """Stream one request, echoing tokens; returns (text, mesh, client ttft ms, total ms);
    ``stream_max_s``: the Settings' (``LLM_MESH_STREAM_MAX_S``), None: the client's default;
    ``client``: sent through it (those options are then its own), else a client of its own.

    A failure once part of the answer is printed is an :class:`UpstreamError` saying the
    stream broke (the printed part stands, incomplete); before that, the failure itself
    (a :class:`ModelUnavailable` there is what ``ask --fallback`` answers). A stream that
    ends without ``[DONE]`` is such a failure (``MeshClient.stream``). Each event's text
    is its first choice's ``delta.content`` or ``text`` (``core/answer_text.chunk_text``);
    an event of another shape prints nothing, and an event with an ``error`` is an error.
    Text past what the request's ``max_tokens`` can hold (:func:`text_bound`) is such a
    failure too, not gathered or printed further."""
    t0 = time.perf_counter()
    ttft: float | None = None
    text = ""
    limit = text_bound(body.get("max_tokens"))
    mesh: dict[str, Any] = {}
    try:
        chunks = (
            client.stream(path, body)
            if client is not None
            else _chunks(registry_url, path, body, api_key, ca_file, stream_max_s, http_client)
        )
        async for chunk in chunks:
            if chunk.get("object") == "mesh.headers":
                continue
            if isinstance(chunk.get("mesh"), dict):
                mesh = dict(chunk["mesh"])
            if chunk.get("error") is not None:  # an error event beside choices: an error
                raise error_from_payload(502, chunk)
            # the receipts' rule (core/answer_text.py): the first choice's delta.content or
            # text, "" for a shape it cannot read (found 2026-12-04: choices not a list, a
            # delta not an object or a content not a string ended ``ask`` in a traceback)
            piece = chunk_text(chunk)
            if piece:
                if ttft is None:
                    ttft = (time.perf_counter() - t0) * 1000
                if limit is not None and len(text) + len(piece) > limit:
                    raise UpstreamError(
                        f"the gateway streamed more text than {body.get('max_tokens')} tokens "
                        f"can hold ({limit:,} characters): not read further"
                    )
                text += piece
                console.print(
                    terminal_text(piece), end="", markup=False, highlight=False, soft_wrap=True
                )
    except MeshError as exc:
        if not text:
            raise
        console.print()
        raise UpstreamError(
            f"the stream broke after part of the answer was printed ({len(text)} characters, "
            f"above; the answer is incomplete and was not asked again): {exc}",
            printed=len(text),
        ) from exc
    console.print()
    return text, mesh, ttft, (time.perf_counter() - t0) * 1000


async def _chunks(
    registry_url: str,
    path: str,
    body: dict[str, Any],
    api_key: str | None,
    ca_file: str | None,
    stream_max_s: float | None,
    http_client: httpx.AsyncClient | None,
) -> AsyncIterator[dict[str, Any]]:
    async with MeshClient(
        registry_url, http_client=http_client, api_key=api_key, ca_file=ca_file,
        stream_max_s=stream_max_s, notice=PlainHttpNotice((), quiet=True),  # `ask` said it
    ) as client:  # fmt: skip
        async for chunk in client.stream(path, body):
            yield chunk


async def run_demo(
    console: Console,
    registry_url: str,
    model: str,
    prompt: str,
    task: str,
    max_tokens: int,
    stream_max_s: float | None = None,
) -> None:
    console.print(  # the user's words printed as written (a "[/]" in the prompt crashed)
        f"[bold]request[/] (task {shown(task)}, model {shown(model)}): [cyan]{shown(prompt)}[/]"
    )
    console.rule("completion")
    console.print(prompt, end="", markup=False, highlight=False)
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "task_type": task,
    }
    text, mesh, ttft, total = await stream_request(
        console, registry_url, "/v1/completions", body, stream_max_s=stream_max_s
    )
    console.rule()
    if not text.strip():
        raise MeshError("the model returned an empty completion")
    if not mesh:
        raise MeshError("the answer carried no mesh metadata")
    console.print(metrics_table(mesh, client_ttft_ms=ttft, total_ms=total))


async def ask_once(
    console: Console,
    registry_url: str,
    prompt: str,
    *,
    model: str | None,
    task: str | None,
    stream: bool,
    chat: bool,
    max_tokens: int,
    temperature: float | None,
    fallback: bool,
    api_key: str | None = None,
    settings: Settings | None = None,
    http_client: httpx.AsyncClient | None = None,
    replica_memory: ReplicaMemory | None = None,
    avoid_regions: Sequence[str] = (),
    strict_regions: bool = False,
    allow_prompt_keeping: bool = False,
) -> dict[str, Any] | None:
    """``llm-mesh ask``. With ``fallback``, a model that is not up is answered by one of the
    same specialty (streamed too: only while none of the answer is printed; a stream that
    breaks after that says so, never a second answer). Returns the answer's receipt as
    ``ask --save`` writes it (``core/receipt_verify.saved_form``), None without one."""
    registry = DistributedModelRegistry(
        settings, registry_url=registry_url, api_key=api_key, http_client=http_client,
        replica_memory=replica_memory, keep_receipts=False,  # `ask` keeps its own
        warn_plain_http=False,  # `ask` says it on stderr itself (cli/common.warn_plain_http)
    )  # fmt: skip
    registry.deadline_advice = ASK_ADVICE  # a 504 says `--stream`, not the API's field
    registry.no_key_hint = CLI_NO_KEY_HINT  # a wrong key's 401 says `--api-key`
    if settings is not None:  # a body over the gateway's limit is not sent (found: cli37)
        registry.max_body_bytes = settings.limits.max_body_bytes
    if stream:
        if model is None:
            await registry.refresh()
        return await _ask_streaming(
            console, registry, prompt, model or registry.best_model_for_task(task), task=task,
            chat=chat, max_tokens=max_tokens, temperature=temperature, fallback=fallback,
            by_task=model is None,
            stream_max_s=settings.stream_max_s if settings is not None else None,
            regions=({"avoid_regions": list(avoid_regions)} if avoid_regions else {})
            | ({"strict_regions": True} if strict_regions else {})
            | ({"allow_prompt_keeping": True} if allow_prompt_keeping else {}),
        )  # fmt: skip
    try:
        r = await registry.get_response(
            model,
            prompt,
            task,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback=fallback,
            chat=chat,
            avoid_regions=avoid_regions,
            strict_regions=strict_regions,
            allow_prompt_keeping=allow_prompt_keeping,
        )
    except ModelUnavailable as exc:  # the API's words for the option are fallback=True
        raise _flag_words(exc) from exc
    limit = text_bound(max_tokens)
    if limit is not None and len(r.text) > limit:  # not printed (found 2026-12-05: 64 MiB)
        raise UpstreamError(
            f"the gateway answered more text than {max_tokens} tokens can hold "
            f"({len(r.text):,} characters, at most {limit:,}): not printed"
        )
    console.print(
        (prompt if not chat else "") + terminal_text(r.text), markup=False, highlight=False
    )
    mesh = {**r.to_dict(), "model": r.model}
    note = f"(fallback from {shown(r.fallback_from)})" if r.fallback_from else ""
    console.print(f"[dim]{metrics_line(mesh, note=note, width=console.width)}[/]")
    return r.receipt


def _flag_words(exc: ModelUnavailable) -> ModelUnavailable:
    """``exc`` in the CLI's words (its options are ``--fallback``, ``--allow-keep``)."""
    return ModelUnavailable(
        exc.message.replace("with fallback=True", "with --fallback").replace(
            "send allow_prompt_keeping: true", "pass --allow-keep"
        ),
        model=exc.model,
        available=exc.available,
        retry_after=exc.retry_after,
    )


async def _ask_streaming(
    console: Console,
    registry: DistributedModelRegistry,
    prompt: str,
    model: str,
    *,
    task: str | None,
    chat: bool,
    max_tokens: int,
    temperature: float | None,
    fallback: bool,
    stream_max_s: float | None,
    regions: dict[str, Any],
    by_task: bool = False,
) -> dict[str, Any] | None:
    body: dict[str, Any] = {"max_tokens": max_tokens, **regions}
    if temperature is not None:
        body["temperature"] = temperature
    if task:
        body["task_type"] = task
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/v1/completions"

    def unsent(name: str) -> None:  # as MeshClient.stream sends it (get_response's check)
        limit = registry.max_body_bytes
        too_large = None if limit is None else unsent_too_large(
            {**body, "model": name, "stream": True}, prompt, limit
        )  # fmt: skip
        if too_large is not None:
            raise too_large

    unsent(model)  # before the prompt is echoed
    if not chat:
        console.print(prompt, end="", markup=False, highlight=False)

    async def one(name: str) -> tuple[str, dict[str, Any], float | None, float]:
        unsent(name)
        # begins at the gateway that answered the routing's refresh or the stream before
        # (found 2026-12-05: at the first URL each time, ~9 s again on a hung first one)
        async with registry.client(stream_max_s=stream_max_s) as client:
            return await stream_request(
                console, registry.registry_url, path, {**body, "model": name}, client=client
            )

    note = ""
    try:
        try:
            _, mesh, ttft, total = await one(model)
        except ModelUnavailable as exc:  # nothing of the answer printed yet (stream_request)
            if by_task:  # no --model: the task's best within the constraints (get_response's)
                _, mesh, ttft, total = await one(registry.task_choice(exc, task, model))
            else:
                alt = registry.fallback_model(
                    exc, model, task, fallback=fallback, flag="--fallback"
                )
                _, mesh, ttft, total = await one(alt)
                note = f"(fallback from {shown(model)})"
    except MeshError as exc:
        if not chat and not exc.extra.get("printed"):
            console.print()  # end the echoed prompt's line before the error
        raise
    line = metrics_line(mesh, client_ttft_ms=ttft, total_ms=total, note=note, width=console.width)
    console.print(f"[dim]{line}[/]")
    return saved_form(mesh)
