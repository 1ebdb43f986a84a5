"""Parsing nvidia-smi and /proc/meminfo text (core/hardware.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.hardware import MIB, GpuInfo, MemInfo, parse_meminfo, parse_nvidia_smi

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
