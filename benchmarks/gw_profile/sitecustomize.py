"""Benchmark-only: a CPU profile of the registry process's event loop, for
``benchmarks/probe_gateway_cpu.py``.

The probe starts its mesh with this folder first on ``PYTHONPATH`` and
``LLM_MESH_BENCH_PROFILE_DIR`` set. In a process started as ``LLM_Mesh.cli registry``
SIGUSR1 starts a ``cProfile`` of the main thread (thread CPU clock) and SIGUSR2 stops it
and writes ``$LLM_MESH_BENCH_PROFILE_DIR/<pid>.prof``. The package has no such hook.
"""

import os
import sys

_DIR = os.environ.get("LLM_MESH_BENCH_PROFILE_DIR")

if _DIR and "registry" in sys.argv:
    import cProfile
    import signal
    import time

    _prof: "cProfile.Profile | None" = None

    def _start(*_a: object) -> None:
        global _prof
        _prof = cProfile.Profile(time.thread_time)
        _prof.enable()

    def _stop(*_a: object) -> None:
        global _prof
        if _prof is not None:
            _prof.disable()
            _prof.dump_stats(os.path.join(_DIR, f"{os.getpid()}.prof"))
            _prof = None

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
