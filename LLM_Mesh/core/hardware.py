"""Parsing what a machine says about its hardware (pure: text in, numbers out).

``LLM_Mesh.node.hardware`` runs the commands and reads the files; the parsers
here only read their text:

- ``nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits``
  prints one line per GPU, ``NAME, TOTAL_MIB, FREE_MIB``;
- ``/proc/meminfo`` prints ``Key:   value kB`` lines.

:class:`Machine` holds what was found as plain data. Like everything here it needs
the standard library only: ``setup-node-operator.sh`` plans a node with the system
Python before any venv (and so before pydantic) exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
KIB = 1024

NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=name,memory.total,memory.free",
    "--format=csv,noheader,nounits",
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_total_bytes: int
    memory_free_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_free_bytes": self.memory_free_bytes,
        }


@dataclass(frozen=True)
class Machine:
    """One machine's hardware; the fields of ``core.schemas.Hardware`` (plus available RAM)."""

    cpu_count: int = 0
    memory_bytes: int = 0
    memory_available_bytes: int = 0
    disk_free_bytes: int = 0
    gpus: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_count": self.cpu_count,
            "memory_bytes": self.memory_bytes,
            "memory_available_bytes": self.memory_available_bytes,
            "disk_free_bytes": self.disk_free_bytes,
            "gpus": [dict(g) for g in self.gpus],
        }


@dataclass(frozen=True)
class MemInfo:
    total_bytes: int
    available_bytes: int


def _mib(raw: str) -> int | None:
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]", ...
    return int(value * MIB) if value >= 0 else None


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """GPUs from nvidia-smi's CSV; lines that do not parse are skipped."""
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.rsplit(",", 2)  # a GPU name could hold a comma; the numbers cannot
        if len(parts) != 3:
            continue
        name, total_raw, free_raw = (p.strip() for p in parts)
        total = _mib(total_raw)
        if not name or total is None:
            continue
        gpus.append(GpuInfo(name=name, memory_total_bytes=total, memory_free_bytes=_mib(free_raw)))
    return gpus


def parse_meminfo(text: str) -> MemInfo:
    """Total and available RAM from /proc/meminfo text.

    ``MemAvailable`` is missing on kernels before 3.14: then free + buffers +
    cached stands in for it. Raises ``ValueError`` without ``MemTotal``.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if not fields:
            continue
        try:
            number = int(fields[0])
        except ValueError:
            continue
        unit = fields[1].lower() if len(fields) > 1 else ""
        values[key.strip()] = number * KIB if unit == "kb" else number
    if "MemTotal" not in values:
        raise ValueError("no MemTotal line in /proc/meminfo text")
    total = values["MemTotal"]
    if "MemAvailable" in values:
        available = values["MemAvailable"]
    else:
        available = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return MemInfo(total_bytes=total, available_bytes=min(available, total))
