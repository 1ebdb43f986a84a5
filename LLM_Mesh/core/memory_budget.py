"""Which models to unload so another fits: an LRU policy under a memory budget.

Pure. The node keeps, for each loaded model, its size, when it was last used
(on the node's clock) and how many requests it is serving. To load a model of
``size`` bytes under ``budget`` bytes:

1. already loaded → nothing to do;
2. larger than the whole budget → refuse;
3. fits in what is free → load, unload nothing;
4. otherwise unload idle models (no request in flight), least recently used
   first, until it fits; a model with requests in flight is never unloaded;
   if even all idle models are not enough → refuse, unload nothing.

The default budget is 80 % of the RAM available when the node starts
(:func:`default_budget`); :func:`estimate_load_time_s` tells the registry how
long a model that is not loaded would take to load (the last measured load
time when there is one, else ``0.5 s + size / 1 GB/s``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadedInfo:
    size: int
    last_used: float
    in_flight: int = 0


@dataclass(frozen=True)
class LoadDecision:
    load: bool
    unload: list[str] = field(default_factory=list)
    reason: str = ""


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def plan_load(
    model_id: str, size: int, loaded: Mapping[str, LoadedInfo], budget: int
) -> LoadDecision:
    """Decide whether ``model_id`` can be loaded and which models to unload first."""
    if size < 0 or budget < 0:
        raise ValueError("size and budget must not be negative")
    if model_id in loaded:
        return LoadDecision(load=False, reason=f"{model_id} is already loaded")
    if size > budget:
        return LoadDecision(
            load=False,
            reason=f"{model_id} needs {_gb(size)}, more than the whole budget of {_gb(budget)}",
        )
    used = sum(info.size for info in loaded.values())
    free = budget - used
    if size <= free:
        return LoadDecision(load=True, reason=f"fits in the {_gb(free)} free")
    idle = sorted(
        ((mid, info) for mid, info in loaded.items() if info.in_flight <= 0),
        key=lambda item: (item[1].last_used, item[0]),
    )
    unload: list[str] = []
    for mid, info in idle:
        unload.append(mid)
        free += info.size
        if size <= free:
            return LoadDecision(
                load=True,
                unload=unload,
                reason=f"unloading least recently used idle model(s) {', '.join(unload)} to make room",
            )
    busy = sorted(mid for mid, info in loaded.items() if info.in_flight > 0)
    return LoadDecision(
        load=False,
        reason=(
            f"{model_id} needs {_gb(size)}; only {_gb(free)} could be freed "
            f"(busy, not unloadable: {', '.join(busy) or 'none'})"
        ),
    )


DEFAULT_BUDGET_FRACTION = 0.8
"""Without ``memory_budget_bytes`` a node may fill this share of the RAM available at start."""

LOAD_BYTES_PER_S = 1e9
"""Conservative speed of reading a GGUF into memory (an SSD with the page cache cold)."""

LOAD_OVERHEAD_S = 0.5
"""Fixed cost of creating a llama.cpp context, whatever the model's size."""


def default_budget(available_bytes: int, fraction: float = DEFAULT_BUDGET_FRACTION) -> int:
    """``fraction`` of ``available_bytes`` (the RAM free for new allocations right now)."""
    if available_bytes < 0:
        raise ValueError("available_bytes must not be negative")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return int(available_bytes * fraction)


def estimate_load_time_s(size: int, measured_s: float | None = None) -> float:
    """Seconds to load a model of ``size`` bytes: what it took last time, else an estimate."""
    if size < 0:
        raise ValueError("size must not be negative")
    if measured_s is not None and measured_s >= 0:
        return round(measured_s, 3)
    return round(LOAD_OVERHEAD_S + size / LOAD_BYTES_PER_S, 3)
