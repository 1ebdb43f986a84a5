"""Benchmark-only: a CPU profile of the registry process's event loop, for
``benchmarks/probe_gateway_cpu.py``.

The probe starts its mesh with this folder first on ``PYTHONPATH`` and
``LLM_MESH_BENCH_PROFILE_DIR`` set. In a process started as ``LLM_Mesh.cli registry``
SIGUSR1 starts a ``cProfile`` of the main thread (thread CPU clock) and SIGUSR2 stops it
and writes ``$LLM_MESH_BENCH_PROFILE_DIR/<pid>.prof``. SIGUSR2 with no profile running
writes ``<pid>.threads.json`` instead: each thread's native id and name, and settlement's
counters (writes done at once on the loop, in the connection's thread, gathered over a
loop iteration; checkpoints), so the probe can name the threads whose CPU it reads from
``/proc``. ``LLM_MESH_BENCH_SETTLE_INTERVAL_S`` sets the settler's period (to measure
the hot path without the settler's rounds), ``LLM_MESH_BENCH_SETTLE_CACHE_KIB`` the page
cache of settlement's SQLite connection (``PRAGMA cache_size``; SQLite's default 2,000
KiB). The package has no such hooks.
"""

import os
import sys

_DIR = os.environ.get("LLM_MESH_BENCH_PROFILE_DIR")

if _DIR and "registry" in sys.argv:
    import cProfile
    import json
    import signal
    import threading
    import time

    _prof: "cProfile.Profile | None" = None

    def _start(*_a: object) -> None:
        global _prof
        _prof = cProfile.Profile(time.thread_time)
        _prof.enable()

    from LLM_Mesh.registry import settle_db as _settle_db
    from LLM_Mesh.registry import settlement as _settlement

    _made: list = []  # the settlement objects this process made (the app's gc.freeze()
    # hides them from gc.get_objects)

    def _keep(cls: type) -> None:
        init = cls.__init__

        def _init(self, *a, **kw):  # type: ignore[no-untyped-def]
            init(self, *a, **kw)
            _made.append(self)

        cls.__init__ = _init  # type: ignore[method-assign]

    _keep(_settle_db.SqliteSettleDb)
    _keep(_settlement.Settlement)

    def _counters() -> dict:
        out: dict = {}
        for obj in _made:
            if isinstance(obj, _settle_db.SqliteSettleDb):
                out.update(inline_batches=obj.inline_batches, thread_batches=obj.thread_batches,
                           checkpoints=obj.checkpoints)  # fmt: skip
            else:
                out.update(tick_batches=obj.tick_batches, tick_ops=obj.tick_ops)
        return out

    def _stop(*_a: object) -> None:
        global _prof
        if _prof is not None:
            _prof.disable()
            _prof.dump_stats(os.path.join(_DIR, f"{os.getpid()}.prof"))
            _prof = None
            return
        names = {str(t.native_id): t.name for t in threading.enumerate()}
        with open(os.path.join(_DIR, f"{os.getpid()}.threads.json"), "w") as f:
            json.dump({"threads": names, "settlement": _counters()}, f)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)

    _interval = os.environ.get("LLM_MESH_BENCH_SETTLE_INTERVAL_S")
    if _interval:
        _init = _settlement.Settlement.__init__

        def _patched(self, *a, **kw):  # type: ignore[no-untyped-def]
            kw["settle_interval_s"] = float(_interval)
            _init(self, *a, **kw)

        _settlement.Settlement.__init__ = _patched  # type: ignore[method-assign]

    _cache = os.environ.get("LLM_MESH_BENCH_SETTLE_CACHE_KIB")
    if _cache:
        _connect = _settle_db.SqliteSettleDb._connect

        def _connect_cached(self):  # type: ignore[no-untyped-def]
            conn = _connect(self)
            conn.execute(f"PRAGMA cache_size=-{int(_cache)}")
            return conn

        _settle_db.SqliteSettleDb._connect = _connect_cached  # type: ignore[method-assign]
