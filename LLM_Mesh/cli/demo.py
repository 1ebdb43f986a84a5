"""The demo request and ``llm-mesh ask``: send one request, print answer and metrics."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from LLM_Mesh.cli.render import metrics_line, metrics_table, shown, terminal_text
from LLM_Mesh.client import MeshClient
from LLM_Mesh.config import Settings
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import MeshError


async def stream_request(
    console: Console,
    registry_url: str,
    path: str,
    body: dict[str, Any],
    *,
    api_key: str | None = None,
    ca_file: str | None = None,
    stream_max_s: float | None = None,
) -> tuple[str, dict[str, Any], float | None, float]:
    """Stream one request, echoing tokens; returns (text, mesh, client ttft ms, total ms);
    ``stream_max_s``: the Settings' (``LLM_MESH_STREAM_MAX_S``), None: the client's default."""
    t0 = time.perf_counter()
    ttft: float | None = None
    text = ""
    mesh: dict[str, Any] = {}
    async with MeshClient(
        registry_url, api_key=api_key, ca_file=ca_file, stream_max_s=stream_max_s
    ) as client:
        async for chunk in client.stream(path, body):
            if chunk.get("object") == "mesh.headers":
                continue
            if chunk.get("mesh"):
                mesh = dict(chunk["mesh"])
            for choice in chunk.get("choices") or []:
                piece = choice.get("text")
                if piece is None:
                    piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - t0) * 1000
                    text += piece
                    console.print(
                        terminal_text(piece), end="", markup=False, highlight=False, soft_wrap=True
                    )
    console.print()
    return text, mesh, ttft, (time.perf_counter() - t0) * 1000


async def run_demo(
    console: Console,
    registry_url: str,
    model: str,
    prompt: str,
    task: str,
    max_tokens: int,
    stream_max_s: float | None = None,
) -> None:
    console.print(f"[bold]request[/] (task {task}, model {model}): [cyan]{prompt}[/]")
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
) -> None:
    registry = DistributedModelRegistry(settings, registry_url=registry_url, api_key=api_key)
    if model is None:
        await registry.refresh()
        model = registry.best_model_for_task(task)
    if stream:
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
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
            console.print(prompt, end="", markup=False, highlight=False)
        _, mesh, ttft, total = await stream_request(
            console, registry_url, path, body, api_key=api_key, ca_file=registry.ca_file,
            stream_max_s=settings.stream_max_s if settings is not None else None,
        )  # fmt: skip
        console.print(f"[dim]{metrics_line(mesh, client_ttft_ms=ttft, total_ms=total)}[/]")
        return
    r = await registry.get_response(
        model,
        prompt,
        task,
        max_tokens=max_tokens,
        temperature=temperature,
        fallback=fallback,
        chat=chat,
    )
    console.print(
        (prompt if not chat else "") + terminal_text(r.text), markup=False, highlight=False
    )
    mesh = {**r.to_dict(), "model": r.model}
    note = f" (fallback from {shown(r.fallback_from)})" if r.fallback_from else ""
    console.print(f"[dim]{metrics_line(mesh)}{note}[/]")
