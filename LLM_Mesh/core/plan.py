"""Which catalog models a node should host: fit to its hardware, then network demand.

Pure. For every catalog model the plan says whether it fits and why, and ranks
the ones that do, in the spirit of Petals' block selection (a server serves
the blocks the swarm has least throughput for):

**Fit.** A model needs ``spec.min_memory_bytes`` (weights + ~20 % KV cache).
It goes on the GPU with the most usable memory when that is enough (free
memory when nvidia-smi reports it, else total), otherwise in RAM. Usable RAM
is total RAM less a reserve for the operating system and the operator's own
work: ``max(1 GB, 20 %)``. The file needs ``size_bytes`` of free disk plus 5 %
(nothing when it is already hosted). Old GGML files cannot be served by a
current llama.cpp.

**Speed heuristic.** Decoding one token reads every weight once, so it is
memory-bandwidth bound: ``tokens/s ≈ effective bandwidth / model bytes``,
with conservative effective bandwidths of 20 GB/s for CPU RAM (dual-channel
DDR4 at ~50 % efficiency) and 300 GB/s for a GPU (a mid-range card). A model
under ``min_tokens_per_s`` fits but is not recommended. The figure is an estimate for
an idle machine, never a measurement of this one: the plan says so in its reason
(``estimated``) and ``SPEED_NOTE`` (printed under the plan) says from what, how a busy
or few-core machine differs, and where the node's measured speed shows (found
2026-12-07: the setup script said "~79 tokens/s" on a loaded 2-core box that gave 1–4):
``node info`` and, while the node runs, ``node plan`` beside the estimate
(``core/measured_speed.py``).

**Demand.** ``(requests_waiting + requests_refused + 1) / (nodes_serving + 1)``:
demand the network could not place, shared over the nodes already serving it;
the ``+1`` makes a model nobody serves worth hosting even before anyone asks.

Ranking: recommended first, already hosted first among those, then demand,
then speed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from LLM_Mesh.core.catalog import CATALOG, ModelSpec
from LLM_Mesh.core.plural import counted

GB = 1_000_000_000
CPU_BANDWIDTH_BPS = 20e9
GPU_BANDWIDTH_BPS = 300e9
DISK_MARGIN = 1.05
MIN_TOKENS_PER_S = 2.0
SPEED_NOTE = (
    "tokens/s: an estimate for an idle machine, not measured here: memory bandwidth / model"
    f" size, assuming {CPU_BANDWIDTH_BPS / GB:.0f} GB/s for RAM and"
    f" {GPU_BANDWIDTH_BPS / GB:.0f} GB/s for a GPU; a busy or few-core machine is slower"
    " (gemma-3-270m on a shared 2-core box: ~80 idle, 1-12 under load, docs/benchmarks.md);"
    " measured here: `llm-mesh node info` (the node's answers since it started, per model),"
    ' `llm-mesh node plan`\'s "measured tok/s" while the node runs, each `llm-mesh ask` answer'
)


class Hardware(Protocol):
    """What a plan reads of a machine: ``core.schemas.Hardware`` or ``core.hardware.Machine``.

    A protocol, not the pydantic model, so that planning needs the standard library
    only (``setup-node-operator.sh`` plans before any venv exists).
    """

    @property
    def memory_bytes(self) -> int: ...

    @property
    def disk_free_bytes(self) -> int: ...

    @property
    def gpus(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True)
class ModelDemand:
    model: str
    requests_waiting: int = 0
    requests_refused: int = 0
    nodes_serving: int = 0

    @property
    def score(self) -> float:
        unmet = max(0, self.requests_waiting) + max(0, self.requests_refused)
        return (unmet + 1) / (max(0, self.nodes_serving) + 1)


@dataclass(frozen=True)
class PlanEntry:
    model: str
    fits: bool
    recommended: bool
    device: Literal["gpu", "cpu"] | None
    memory_needed_bytes: int
    disk_needed_bytes: int
    est_tokens_per_s: float | None
    demand_score: float
    already_hosted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def usable_ram_bytes(hardware: Hardware) -> int:
    total = hardware.memory_bytes
    return max(0, total - max(GB, total // 5))


def _gpu_memory(gpu: Mapping[str, Any]) -> int:
    free = gpu.get("memory_free_bytes")
    total = gpu.get("memory_total_bytes")
    value = free if isinstance(free, int) else total
    return value if isinstance(value, int) else 0


def best_gpu_bytes(hardware: Hardware) -> int:
    return max((_gpu_memory(g) for g in hardware.gpus), default=0)


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def _obtainable(spec: ModelSpec) -> bool:
    return bool(spec.url or spec.source)


def evaluate(
    spec: ModelSpec,
    hardware: Hardware,
    demand: ModelDemand | None,
    hosted: bool,
    *,
    min_tokens_per_s: float = MIN_TOKENS_PER_S,
) -> PlanEntry:
    """One model's fit, speed and demand, with the reason in words."""
    need = spec.min_memory_bytes
    disk_need = 0 if hosted else int(spec.size_bytes * DISK_MARGIN)
    demand_score = (demand or ModelDemand(spec.id)).score
    gpu_mem, ram = best_gpu_bytes(hardware), usable_ram_bytes(hardware)
    device: Literal["gpu", "cpu"] | None = None
    tps: float | None = None
    if gpu_mem >= need:
        device, tps = "gpu", GPU_BANDWIDTH_BPS / max(spec.size_bytes, 1)
    elif ram >= need:
        device, tps = "cpu", CPU_BANDWIDTH_BPS / max(spec.size_bytes, 1)
    problems: list[str] = []
    if device is None:
        where = f"{_gb(ram)} usable RAM" + (f", {_gb(gpu_mem)} GPU memory" if hardware.gpus else "")
        problems.append(f"needs {_gb(need)} of memory, has {where}")
    if disk_need > hardware.disk_free_bytes:
        problems.append(f"needs {_gb(disk_need)} of disk, {_gb(hardware.disk_free_bytes)} free")
    if spec.file_format != "gguf":
        problems.append(f"old {spec.file_format.upper()} file: convert it to GGUF first")
    fits = not problems
    notes: list[str] = []
    if fits and tps is not None and tps < min_tokens_per_s:
        notes.append(f"too slow here (~{tps:.1f} tokens/s estimated)")
    if fits and not hosted and not _obtainable(spec):
        notes.append("no download source in the catalog: add the file yourself")
    recommended = fits and not notes
    if fits:
        head = "already hosted" if hosted else "fits"
        speed = f"~{tps:.0f} tokens/s estimated" if tps is not None else ""
        reason = f"{head}: {_gb(need)} in {'GPU memory' if device == 'gpu' else 'RAM'}, {speed}"
    else:
        reason = "does not fit: " + "; ".join(problems)
    reason += f"; demand {demand_score:.2f}"
    if demand is not None:
        reason += (
            f" ({demand.requests_waiting} waiting, {demand.requests_refused} refused, "
            f"{counted(demand.nodes_serving, 'node')} serving)"
        )
    if notes:
        reason += "; " + "; ".join(notes)
    return PlanEntry(
        model=spec.id,
        fits=fits,
        recommended=recommended,
        device=device,
        memory_needed_bytes=need,
        disk_needed_bytes=disk_need,
        est_tokens_per_s=tps,
        demand_score=demand_score,
        already_hosted=hosted,
        reason=reason,
    )


def plan_models(
    hardware: Hardware,
    catalog: Iterable[ModelSpec] = CATALOG,
    demand: Mapping[str, ModelDemand] | None = None,
    already_hosted: Collection[str] = (),
    *,
    min_tokens_per_s: float = MIN_TOKENS_PER_S,
) -> list[PlanEntry]:
    """Every catalog model, best to host first, each with the reason."""
    demand = demand or {}
    entries = [
        evaluate(
            spec,
            hardware,
            demand.get(spec.id),
            spec.id in already_hosted,
            min_tokens_per_s=min_tokens_per_s,
        )
        for spec in catalog
    ]
    return sorted(
        entries,
        key=lambda e: (
            not e.recommended,
            not e.fits,
            not e.already_hosted,
            -e.demand_score,
            -(e.est_tokens_per_s or 0.0),
            e.model,
        ),
    )


def choose(entries: Iterable[PlanEntry], disk_free_bytes: int, max_models: int = 1) -> list[str]:
    """Up to ``max_models`` recommended models, in plan order, whose files fit the disk together."""
    chosen: list[str] = []
    disk = disk_free_bytes
    for e in entries:
        if len(chosen) >= max_models:
            break
        if e.recommended and e.disk_needed_bytes <= disk:
            chosen.append(e.model)
            disk -= e.disk_needed_bytes
    return chosen
