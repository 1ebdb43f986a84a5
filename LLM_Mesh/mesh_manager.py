"""The seed's task router: ``mesh_manager.handle_task(task_type, payload)``.

    from LLM_Mesh.mesh_manager import mesh_manager
    result = mesh_manager.handle_task("debug", {{"code": "...", "error": "..."}})

1. The task type maps to specialties (``core.tasks.TASK_SPECIALTIES``, data).
2. The best *available* model for those specialties is chosen
   (``core.tasks.rank_models_for_task``) — or the caller's ``model=``.
3. The task's prompt is built from the payload (``core.tasks.PROMPTS``).
4. The request is routed to the best node hosting that model.
5. The answer comes back with its cost and performance metrics.

``handle_task`` works both ways: in async code ``await`` it; called from plain
synchronous code (no running event loop) it runs to completion and returns the
:class:`TaskResult` directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from LLM_Mesh.core.tasks import build_prompt, specialties_for
from LLM_Mesh.distributed_models import DistributedModelRegistry, ModelResponse, model_registry
from LLM_Mesh.model_response import labelled_text

__all__ = ["MeshManager", "TaskResult", "handle_task", "mesh_manager"]


@dataclass
class TaskResult:
    """What ``handle_task`` returns: the answer, the model chosen and why, the metrics."""

    task_type: str
    model: str
    response: str
    node_id: str | None
    specialties: tuple[str, ...]
    cost: int  # micro-NetworkTokens
    latency_ms: float | None
    ttft_ms: float | None
    tokens_per_s: float | None
    prompt_tokens: int
    completion_tokens: int
    simulated: bool = False
    fallback_from: str | None = None
    request_id: str | None = None

    def __str__(self) -> str:
        return labelled_text(self.response, self.simulated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_response(cls, task_type: str, r: ModelResponse) -> TaskResult:
        return cls(
            task_type=task_type,
            model=r.model,
            response=r.text,
            node_id=r.node_id,
            specialties=specialties_for(task_type),
            cost=r.cost,
            latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms,
            tokens_per_s=r.tokens_per_s,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            simulated=r.simulated,
            fallback_from=r.fallback_from,
            request_id=r.request_id,
        )


class MeshManager:
    """Turns a task into a model choice, a prompt, and a routed request."""

    def __init__(self, registry: DistributedModelRegistry | None = None) -> None:
        self.registry = registry or model_registry

    async def choose_model(self, task_type: str) -> str:
        """The best model that is up for ``task_type`` right now."""
        await self.registry.refresh()
        return self.registry.best_model_for_task(task_type)

    async def handle_task_async(
        self,
        task_type: str,
        payload: Mapping[str, Any] | str,
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float | None = None,
        fallback: bool = False,
        avoid_regions: Sequence[str] = (),
        strict_regions: bool = False,
    ) -> TaskResult:
        prompt = build_prompt(task_type, payload)
        r = await self.registry.get_response(
            model,  # None: the registry's task routing (within avoid_regions too)
            prompt,
            task_type,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback=fallback,
            avoid_regions=avoid_regions,
            strict_regions=strict_regions,
        )
        return TaskResult.from_response(task_type, r)

    def handle_task(self, task_type: str, payload: Mapping[str, Any] | str, **options: Any) -> Any:
        """Route a task; ``await`` it in async code, or call it from plain code.

        Returns a coroutine of :class:`TaskResult` when an event loop is
        running, else the TaskResult itself. Options: ``model``, ``max_tokens``,
        ``temperature``, ``fallback``, ``avoid_regions``, ``strict_regions``.
        """
        coro: Coroutine[Any, Any, TaskResult] = self.handle_task_async(
            task_type, payload, **options
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        return coro


mesh_manager = MeshManager()


def handle_task(task_type: str, payload: Mapping[str, Any] | str, **options: Any) -> Any:
    """``mesh_manager.handle_task`` under the module's own name, so the migration guide's
    ``mesh_manager.handle_task("debug", {...})`` runs with either import: ``from
    LLM_Mesh.mesh_manager import mesh_manager`` (the instance) or ``from LLM_Mesh import
    mesh_manager`` (this module). Same return and options as
    :meth:`MeshManager.handle_task`."""
    return mesh_manager.handle_task(task_type, payload, **options)


USAGE = """\
LLM_Mesh.mesh_manager is a library: it routes a task (python, debug, code, ...) to the
best model the network has up and returns the answer with its cost and metrics.

From Python:
  from LLM_Mesh.mesh_manager import mesh_manager
  result = mesh_manager.handle_task("debug", {{"code": "...", "error": "..."}})
  print(result.response, result.model, result.cost)

{tasks}
From the command line: llm-mesh ask "def fibonacci(n):" --task python
The network's status: llm-mesh status (or python -m LLM_Mesh.distributed_models).
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m LLM_Mesh.mesh_manager``: how to use it (found 2026-12-04: it did
    nothing, silently, with or without ``--help``)."""
    import argparse
    import textwrap

    from LLM_Mesh.core.tasks import TASK_SPECIALTIES

    tasks = textwrap.fill(f"Task types: {', '.join(TASK_SPECIALTIES)}.", 78)

    parser = argparse.ArgumentParser(
        prog="python -m LLM_Mesh.mesh_manager",
        description=USAGE.format(tasks=tasks),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an unknown argument (2): said by argparse
        return int(exc.code or 0)
    parser.print_help()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
