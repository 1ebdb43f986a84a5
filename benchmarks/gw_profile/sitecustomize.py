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
KiB). ``LLM_MESH_BENCH_SETTLE_WHY=1`` adds counters of why a hot-path write was not done on
the loop (``why_<caller>_in_thread_<what the connection's thread was running>``,
``why_<caller>_locked_<reqlog|other>``: the write lock held by another connection while the
request log's flush was running or not, ``why_tick_queued`` / ``why_tick_writing``: an
iteration's batch behind the writer's, ``why_thread_<kind>``: what went to the thread,
``why_thread_retry_*``: the thread's tries that met the lock; caller ``tick`` an iteration's
batch, ``now`` a write alone, ``transact`` the writer's). ``LLM_MESH_BENCH_SETTLE_INLINE=0``
sends every batch to the connection's thread (none on the loop). The package has no such
hooks.
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

    from LLM_Mesh.registry import settle_db_sqlite as _settle_db
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

    if os.environ.get("LLM_MESH_BENCH_SETTLE_WHY"):
        # why a write is not done on the loop: counted by cause into the thread dump's
        # settlement counters (``why_*``; benchmark-only, see benchmarks/README.md)
        import functools
        import sqlite3
        from collections import Counter

        from LLM_Mesh.registry import request_log as _request_log

        _why: Counter = Counter()
        _state = {"caller": "transact", "reqlog": 0}

        def _kind(fn: object, args: tuple) -> str:
            name = getattr(fn, "__name__", "")
            if name == "_waiting":
                inner = args[0] if args else None
                func = getattr(inner, "func", None)
                return "batch" if getattr(func, "__name__", "") == "_ops" else "append"
            return name.strip("_") or "other"

        _orig_run = _settle_db.SqliteSettleDb._run

        async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
            occ = self.__dict__.setdefault("_why_occ", Counter())
            kind = _kind(fn, args)
            occ[kind] += 1
            _why[f"why_thread_{kind}"] += 1
            try:
                return await _orig_run(self, fn, *args)
            finally:
                occ[kind] -= 1

        _settle_db.SqliteSettleDb._run = _run  # type: ignore[method-assign]

        _orig_inline = _settle_db.SqliteSettleDb._inline

        def _inline(self, fn):  # type: ignore[no-untyped-def]
            caller = _state["caller"]
            if self._in_thread:
                occ = self.__dict__.get("_why_occ", Counter())
                busy = "+".join(sorted(k for k, v in occ.items() if v > 0)) or "?"
                _why[f"why_{caller}_in_thread_{busy}"] += 1
            ran, done = _orig_inline(self, fn)
            if not ran and not self._in_thread and self.inline:
                where = "reqlog" if _state["reqlog"] else "other"
                _why[f"why_{caller}_locked_{where}"] += 1
            elif ran:
                _why[f"why_{caller}_inline"] += 1
            return ran, done

        _settle_db.SqliteSettleDb._inline = _inline  # type: ignore[method-assign]

        _orig_transact = _settle_db.SqliteSettleDb._transact

        def _transact(self, fn):  # type: ignore[no-untyped-def]
            try:
                return _orig_transact(self, fn)
            except sqlite3.OperationalError:
                if threading.current_thread() is not threading.main_thread():
                    _why["why_thread_retry_" + ("reqlog" if _state["reqlog"] else "other")] += 1
                raise

        _settle_db.SqliteSettleDb._transact = _transact  # type: ignore[method-assign]

        def _as(caller: str, orig):  # type: ignore[no-untyped-def]
            @functools.wraps(orig)
            def wrapped(self, *a, **kw):  # type: ignore[no-untyped-def]
                _state["caller"] = caller
                try:
                    return orig(self, *a, **kw)
                finally:
                    _state["caller"] = "transact"

            return wrapped

        _orig_tick = _settlement.Settlement._run_tick

        def _run_tick(self):  # type: ignore[no-untyped-def]
            if self._started and self._tick:
                if self._ops:
                    _why["why_tick_queued"] += 1
                elif self._writing:
                    _why["why_tick_writing"] += 1
            return _orig_tick(self)

        _settlement.Settlement._run_tick = _as("tick", _run_tick)  # type: ignore[method-assign]
        _settlement.Settlement._now = _as("now", _settlement.Settlement._now)  # type: ignore[method-assign]

        _orig_flush = _request_log.RequestWriter.flush

        async def _flush(self):  # type: ignore[no-untyped-def]
            _state["reqlog"] += 1
            try:
                return await _orig_flush(self)
            finally:
                _state["reqlog"] -= 1

        _request_log.RequestWriter.flush = _flush  # type: ignore[method-assign]

        _plain_counters = _counters

        def _counters() -> dict:  # type: ignore[no-redef]
            out = _plain_counters()
            out.update(sorted(_why.items()))
            return out

    if os.environ.get("LLM_MESH_BENCH_SETTLE_INLINE") == "0":
        # every hot-path batch in the connection's thread (none on the loop): what a
        # thread hop costs the loop against the write done there (benchmark-only)
        _init_db = _settle_db.SqliteSettleDb.__init__

        def _no_inline(self, *a, **kw):  # type: ignore[no-untyped-def]
            kw["inline"] = False
            _init_db(self, *a, **kw)

        _settle_db.SqliteSettleDb.__init__ = _no_inline  # type: ignore[method-assign]
