"""Every benchmark and probe in ``benchmarks/`` imports: a name one of them takes from
another that is gone fails here, not on the day someone runs it (found 2026-12-05:
``bench_metrics.py`` imported ``CHUNKS`` from ``bench_gateway``, which became
``--chunks`` on 2026-12-01, and had not started since)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_every_benchmark_module_imports() -> None:
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    assert "bench_gateway" in names and "bench_metrics" in names
    # one interpreter for all (a second each would cost the suite a minute); their own
    # imports resolve as when run from the folder (`python benchmarks/X.py`)
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    root = str(BENCHMARKS.parent)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        cwd=root, env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
