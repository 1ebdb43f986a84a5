"""Parsing nvidia-smi and /proc/meminfo text (core/hardware.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.hardware import MIB, GpuInfo, Machine, MemInfo, parse_meminfo, parse_nvidia_smi
from LLM_Mesh.core.schemas import Hardware

MEMINFO = """MemTotal:       16318480 kB
MemFree:         1234567 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
HugePages_Total:       0
"""


def test_nvidia_smi_two_gpus() -> None:
    text = "NVIDIA H100 80GB HBM3, 81559, 80000\nNVIDIA GeForce RTX 3090, 24576, [N/A]\n\n"
    assert parse_nvidia_smi(text) == [
        GpuInfo("NVIDIA H100 80GB HBM3", 81559 * MIB, 80000 * MIB),
        GpuInfo("NVIDIA GeForce RTX 3090", 24576 * MIB, None),
    ]


def test_nvidia_smi_name_with_comma_and_garbage_lines() -> None:
    text = "Weird, Name, 1024, 512\nNo devices were found\n, 100, 50\nGPU, [N/A], 1\n"
    assert parse_nvidia_smi(text) == [GpuInfo("Weird, Name", 1024 * MIB, 512 * MIB)]


def test_nvidia_smi_empty() -> None:
    assert parse_nvidia_smi("") == []


def test_meminfo() -> None:
    assert parse_meminfo(MEMINFO) == MemInfo(16318480 * 1024, 12000000 * 1024)


def test_meminfo_without_memavailable_estimates() -> None:
    text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n"
    assert parse_meminfo(text) == MemInfo(1000 * 1024, 350 * 1024)


def test_meminfo_without_total() -> None:
    with pytest.raises(ValueError, match="MemTotal"):
        parse_meminfo("MemFree: 1 kB\n")


def test_nvidia_smi_garbage_before_good_lines_is_skipped() -> None:
    text = "\nNo devices were found\n, 100, 50\nGPU, [N/A], 1\nGood, 100, 0\nNeg, 100, -1\n"
    assert parse_nvidia_smi(text) == [
        GpuInfo("Good", 100 * MIB, 0),  # zero free is a number, not unknown
        GpuInfo("Neg", 100 * MIB, None),
    ]


def test_gpu_info_as_dict() -> None:
    assert GpuInfo("g", 10, None).to_dict() == {
        "name": "g",
        "memory_total_bytes": 10,
        "memory_free_bytes": None,
    }


def test_a_machine_as_the_dict_a_node_registers_and_prints() -> None:
    """``Machine.to_dict`` is what ``node/hardware.py`` validates as the wire's ``Hardware``
    and prints in ``node plan --json``: every field under its own name, each GPU a copy
    (the frozen machine's tuple of dicts is never handed out)."""
    gpu = GpuInfo("NVIDIA L4", 24 * 1024 * MIB, 20 * 1024 * MIB).to_dict()
    m = Machine(8, 32 * 1024 * MIB, 20 * 1024 * MIB, 500 * 1024 * MIB, (gpu,))
    d = m.to_dict()
    assert d == {
        "cpu_count": 8,
        "memory_bytes": 32 * 1024 * MIB,
        "memory_available_bytes": 20 * 1024 * MIB,
        "disk_free_bytes": 500 * 1024 * MIB,
        "gpus": [gpu],
    }
    d["gpus"][0]["name"] = "changed"
    assert m.gpus[0]["name"] == "NVIDIA L4"
    hw = Hardware.model_validate(d)
    assert (hw.cpu_count, hw.memory_bytes, hw.disk_free_bytes) == (
        8,
        32 * 1024 * MIB,
        500 * 1024 * MIB,
    )
    assert Machine().to_dict() == {
        "cpu_count": 0, "memory_bytes": 0, "memory_available_bytes": 0, "disk_free_bytes": 0, "gpus": [],
    }  # fmt: skip


def test_meminfo_garbage_lines_and_units() -> None:
    text = "garbage\nEmpty:\nBad: x kB\nMemTotal: 4096\nMemFree: 1 kB\n"
    # no unit: bytes as given; no MemAvailable, Buffers or Cached: free alone
    assert parse_meminfo(text) == MemInfo(4096, 1024)
    assert parse_meminfo("MemTotal: 2 KB\nMemAvailable: 1 kB\n") == MemInfo(2048, 1024)
