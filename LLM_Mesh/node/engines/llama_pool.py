"""Which GGUF models are in memory: load on demand, unload the least recently used.

A :class:`ModelPool` holds the models a llama-cpp node is configured with and
keeps some of them loaded under a memory budget (``memory_budget_bytes``;
``None`` means no limit). A model's size is its catalog ``min_memory_bytes``
(weights + ~20 % KV cache; for a custom model, its file size + 20 %).

- :meth:`ModelPool.preload` loads, in configuration order, every model that
  fits without unloading another (the node starts warm);
- :meth:`ModelPool.acquire` returns a loaded model for one request, loading it
  first when needed; :func:`LLM_Mesh.core.memory_budget.plan_load` decides
  which idle models to unload (least recently used first). A model serving a
  request is never unloaded: when the rest cannot make room the request gets
  503 ``model_unavailable`` (try another node). :meth:`ModelPool.release` ends
  the request and marks the model used now;
- a model bigger than the whole budget can never be served: :meth:`check`
  refuses it when the node starts.

Loading and closing are blocking and run in worker threads; decisions are
serialised by one ``asyncio.Lock``. Closing a model takes its lock, so it waits
for a cancelled generation that is still winding down in its thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from LLM_Mesh.core.memory_budget import LoadedInfo, estimate_load_time_s, plan_load
from LLM_Mesh.errors import ModelUnavailable
from LLM_Mesh.node.engines.base import EngineWorker
from LLM_Mesh.node.engines.llama_abort import AbortSwitch
from LLM_Mesh.node.model_files import ModelFileError, ResolvedModel

RETRY_AFTER_S = 1


@dataclass
class LoadedModel:
    """One model in memory: its ``Llama``, effective context and bookkeeping."""

    model: ResolvedModel
    llama: Any
    n_ctx: int
    last_used: float = 0.0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    worker: EngineWorker = field(default_factory=lambda: EngineWorker("llm-mesh-llama"))
    """The one thread this model's generations run on (see ``EngineWorker``)."""
    abort: AbortSwitch = field(default_factory=AbortSwitch)
    """Its context's abort flag: stops a cancelled prompt inside ``llama_decode``."""


def model_size(model: ResolvedModel) -> int:
    """Memory a model takes when loaded (weights + KV cache estimate)."""
    return model.spec.min_memory_bytes


def close_when_idle(lm: LoadedModel) -> None:
    """Blocking: close ``lm``'s ``Llama`` once no generation holds its lock; stop its worker."""
    close = getattr(lm.llama, "close", None)
    if callable(close):
        with lm.lock:
            close()
    lm.worker.close()


class ModelPool:
    """Configured models, the loaded subset, and the LRU policy between them."""

    def __init__(
        self,
        models: Sequence[ResolvedModel],
        *,
        load: Callable[[ResolvedModel], LoadedModel],
        budget_bytes: int | None = None,
        clock: Callable[[], float],
    ) -> None:
        if budget_bytes is not None and budget_bytes < 0:
            raise ValueError("memory_budget_bytes must not be negative")
        self.models = {m.id: m for m in models}
        self.budget_bytes = budget_bytes
        self.loaded: dict[str, LoadedModel] = {}
        self.load_seconds: dict[str, float] = {}
        """Measured load time per model id (the last load)."""
        self.loads = 0
        self.unloads = 0
        self._load = load
        self._clock = clock
        self._lock = asyncio.Lock()

    # -- what the node reports ----------------------------------------------------

    def is_loaded(self, model_id: str) -> bool:
        return model_id in self.loaded

    def load_time_s(self, model_id: str) -> float:
        """0 for a loaded model; otherwise what loading it would take."""
        if model_id in self.loaded:
            return 0.0
        return estimate_load_time_s(
            model_size(self.models[model_id]), self.load_seconds.get(model_id)
        )

    @property
    def used_bytes(self) -> int:
        return sum(model_size(lm.model) for lm in self.loaded.values())

    def check(self) -> None:
        """Raise :class:`ModelFileError` for a model that cannot fit even alone."""
        if self.budget_bytes is None:
            return
        too_big = [m for m in self.models.values() if model_size(m) > self.budget_bytes]
        if too_big:
            names = ", ".join(f"{m.id} ({model_size(m) / 1e9:.2f} GB)" for m in too_big)
            raise ModelFileError(
                f"{names} needs more than memory_budget_bytes "
                f"({self.budget_bytes / 1e9:.2f} GB); host smaller models or raise the budget"
            )

    # -- loading ------------------------------------------------------------------

    async def preload(self) -> None:
        """Load, in order, every model that fits beside those already loaded."""
        self.check()
        async with self._lock:
            for m in self.models.values():
                if m.id in self.loaded:
                    continue
                if (
                    self.budget_bytes is None
                    or self.used_bytes + model_size(m) <= self.budget_bytes
                ):
                    await self._load_one(m)

    async def _load_one(self, m: ResolvedModel) -> LoadedModel:
        start = self._clock()
        loading = asyncio.ensure_future(asyncio.to_thread(self._load, m))
        cancelled = False
        while not loading.done():  # a thread cannot be stopped: a cancelled request waits
            try:  # for its load (under the pool lock) so the memory is counted, not leaked
                await asyncio.wait({loading})
            except asyncio.CancelledError:
                cancelled = True
        if cancelled and loading.exception() is not None:
            raise asyncio.CancelledError
        lm = loading.result()
        self.load_seconds[m.id] = max(0.0, self._clock() - start)
        lm.last_used = self._clock()
        self.loaded[m.id] = lm
        self.loads += 1
        if cancelled:
            raise asyncio.CancelledError
        return lm

    async def _unload(self, model_id: str) -> None:
        lm = self.loaded.pop(model_id, None)
        if lm is not None:
            self.unloads += 1
            await asyncio.to_thread(close_when_idle, lm)

    def _infos(self) -> dict[str, LoadedInfo]:
        return {
            mid: LoadedInfo(model_size(lm.model), lm.last_used, lm.in_flight)
            for mid, lm in self.loaded.items()
        }

    async def acquire(self, model_id: str) -> LoadedModel:
        """The loaded model for one request (loading it, and unloading others, if needed)."""
        async with self._lock:
            lm = self.loaded.get(model_id)
            if lm is None:
                m = self.models[model_id]
                if self.budget_bytes is not None:
                    decision = plan_load(model_id, model_size(m), self._infos(), self.budget_bytes)
                    if not decision.load:
                        raise ModelUnavailable(
                            f"{model_id} cannot be loaded now: {decision.reason}",
                            model=model_id,
                            retry_after=RETRY_AFTER_S,
                            available=list(self.loaded),
                        )
                    for victim in decision.unload:
                        await self._unload(victim)
                lm = await self._load_one(m)
            lm.in_flight += 1
            lm.last_used = self._clock()
            return lm

    def release(self, lm: LoadedModel) -> None:
        """One request on ``lm`` is over."""
        if lm.in_flight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        lm.in_flight -= 1
        lm.last_used = self._clock()

    async def close(self) -> None:
        """Unload everything (each model once its generation, if any, has wound down)."""
        loaded, self.loaded = self.loaded, {}
        for lm in loaded.values():
            await asyncio.to_thread(close_when_idle, lm)
