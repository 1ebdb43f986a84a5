"""What this machine has: CPUs, RAM, free disk, GPUs.

``detect_hardware(home)`` reads ``os.cpu_count()``, ``/proc/meminfo``,
``shutil.disk_usage`` of the state directory (or its nearest existing parent)
and, when ``nvidia-smi`` is on ``PATH``, its GPU list (with a timeout; a
failing nvidia-smi means no GPUs, not an error). The parsing is in
:mod:`LLM_Mesh.core.hardware`.

Run as a module it prints JSON (used by ``setup-node-operator.sh``)::

    python -m LLM_Mesh.node.hardware [--home DIR] [--plan] [--hosted ID,...]

``--plan`` adds ``"plan"``: every catalog model ranked by fit (see
:mod:`LLM_Mesh.core.plan`), and ``"default_models"``: the ones to propose.

The module and what it imports need the standard library only (``probe_hardware``
gives a plain :class:`~LLM_Mesh.core.hardware.Machine`): the setup script runs it
under the system Python before any venv exists. Only :func:`detect_hardware`, for
the node itself, builds the pydantic wire model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from LLM_Mesh.config import DEFAULT_MODEL
from LLM_Mesh.core.hardware import (
    NVIDIA_SMI_QUERY,
    GpuInfo,
    Machine,
    parse_meminfo,
    parse_nvidia_smi,
)
from LLM_Mesh.core.plan import SPEED_NOTE, choose, plan_models

if TYPE_CHECKING:
    from LLM_Mesh.core.schemas import Hardware

Runner = Callable[[Sequence[str], float], str | None]


def run_command(argv: Sequence[str], timeout: float) -> str | None:
    """stdout of ``argv``, or ``None`` when it is missing, fails or times out."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def detect_gpus(run: Runner = run_command, timeout: float = 10.0) -> list[GpuInfo]:
    out = run(NVIDIA_SMI_QUERY, timeout)
    return parse_nvidia_smi(out) if out else []


def _existing(path: Path) -> Path:
    p = path.expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def probe_hardware(
    home: Path,
    *,
    meminfo: Path = Path("/proc/meminfo"),
    run: Runner = run_command,
    nvidia_timeout: float = 10.0,
) -> Machine:
    """This machine's hardware as plain data (standard library only)."""
    try:
        mem = parse_meminfo(meminfo.read_text())
        memory, available = mem.total_bytes, mem.available_bytes
    except (OSError, ValueError):
        memory = available = 0
    disk = shutil.disk_usage(_existing(home))
    return Machine(
        cpu_count=os.cpu_count() or 1,
        memory_bytes=memory,
        memory_available_bytes=available,
        disk_free_bytes=disk.free,
        gpus=tuple(g.to_dict() for g in detect_gpus(run, nvidia_timeout)),
    )


def detect_hardware(
    home: Path,
    *,
    meminfo: Path = Path("/proc/meminfo"),
    run: Runner = run_command,
    nvidia_timeout: float = 10.0,
) -> Hardware:
    """This machine's hardware, as the registry's ``Hardware`` wire model."""
    # pydantic only here: the probe and the plan must run without the package's deps
    from LLM_Mesh.core.schemas import Hardware

    machine = probe_hardware(home, meminfo=meminfo, run=run, nvidia_timeout=nvidia_timeout)
    return Hardware.model_validate(machine.to_dict())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LLM_Mesh.node.hardware")
    parser.add_argument("--home", type=Path, default=Path.home() / ".llm-mesh")
    parser.add_argument("--plan", action="store_true", help="rank catalog models for this machine")
    parser.add_argument("--hosted", default="", help="comma-separated model ids already hosted")
    parser.add_argument("--max-models", type=int, default=1)
    args = parser.parse_args(argv)
    hw = probe_hardware(args.home)
    out: dict[str, object] = {"hardware": hw.to_dict()}
    if args.plan:
        hosted = [m for m in args.hosted.split(",") if m]
        entries = plan_models(hw, already_hosted=hosted)
        out["plan"] = [e.to_dict() for e in entries]
        out["speed_note"] = SPEED_NOTE  # what the tokens/s are: an estimate, from what
        picked = choose(entries, hw.disk_free_bytes, args.max_models)
        # The embedded default installs from PyPI without a large download: propose it first.
        fits_default = any(e.model == DEFAULT_MODEL and e.recommended for e in entries)
        out["default_models"] = [DEFAULT_MODEL] if fits_default else picked
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
