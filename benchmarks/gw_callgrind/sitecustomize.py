"""Benchmark-only: the registry process run under valgrind's callgrind, for
``benchmarks/probe_gateway_instructions.py``.

The probe starts its mesh with this folder first on ``PYTHONPATH`` and
``LLM_MESH_BENCH_CALLGRIND_DIR`` set. A process started as ``python -m LLM_Mesh.cli
registry serve ...`` replaces itself (``os.execv``: the same process id, so the mesh's
handle on it stays true) with ``valgrind --tool=callgrind`` running the same command line,
instrumentation off until the probe turns it on (``callgrind_control -i on PID``), one
output file a thread (``--separate-threads=yes``) in that folder. Every other process
(the node, the probe) runs as it would. The package has no such hook.
"""

import os
import shutil
import sys

_DIR = os.environ.get("LLM_MESH_BENCH_CALLGRIND_DIR")
_argv = list(getattr(sys, "orig_argv", []))

if (
    _DIR
    and not os.environ.get("LLM_MESH_BENCH_UNDER_CALLGRIND")
    and "LLM_Mesh.cli" in _argv
    and _argv[_argv.index("LLM_Mesh.cli") + 1 : _argv.index("LLM_Mesh.cli") + 3]
    == ["registry", "serve"]
):
    os.environ["LLM_MESH_BENCH_UNDER_CALLGRIND"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(
        shutil.which("valgrind") or "/usr/bin/valgrind",
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            "--dump-instr=no",
            f"--callgrind-out-file={_DIR}/cg.%p",
            sys.executable,
            *_argv[1:],
        ],
    )
