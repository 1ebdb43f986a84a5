"""Benchmark-only: one request's timeline in the registry, for
``benchmarks/probe_gateway_timeline.py``.

The probe starts its mesh with this folder first on ``PYTHONPATH``, ``GW_TIMELINE`` (a comma
list of ``module:function`` or ``module:Class.method``) and ``GW_TIMELINE_OUT`` (a path
prefix) set. In a process started as ``LLM_Mesh.cli registry`` each named function is
wrapped to record, at its start and at its end, ``time.perf_counter_ns`` (wall) and
``time.thread_time_ns`` (the calling thread's CPU) with the thread's id (a coroutine
function: its start is its first step, its end its return, its waits between). SIGUSR1
writes ``<GW_TIMELINE_OUT>.<pid>.json`` (a list of ``[name, "b"|"e", wall_ns, cpu_ns,
thread]``) and empties the record. A name the tree lacks is skipped. The package has no
such hook.
"""

import os
import sys

if "registry" in sys.argv and os.environ.get("GW_TIMELINE_OUT"):
    import functools
    import importlib
    import inspect
    import json
    import signal
    import threading
    import time

    _ev: list = []
    _pc, _tt, _tid = time.perf_counter_ns, time.thread_time_ns, threading.get_ident

    def _wrap(name, f):  # type: ignore[no-untyped-def]
        add = _ev.append
        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def aw(*a, **k):  # type: ignore[no-untyped-def]
                add((name, "b", _pc(), _tt(), _tid()))
                try:
                    return await f(*a, **k)
                finally:
                    add((name, "e", _pc(), _tt(), _tid()))

            return aw

        @functools.wraps(f)
        def w(*a, **k):  # type: ignore[no-untyped-def]
            add((name, "b", _pc(), _tt(), _tid()))
            try:
                return f(*a, **k)
            finally:
                add((name, "e", _pc(), _tt(), _tid()))

        return w

    def _install() -> None:
        for spec in os.environ.get("GW_TIMELINE", "").split(","):
            if not spec:
                continue
            mod, _, attr = spec.partition(":")
            try:
                m = importlib.import_module(mod)
                if "." in attr:
                    cls_name, meth = attr.split(".")
                    cls = getattr(m, cls_name)
                    setattr(cls, meth, _wrap(spec, cls.__dict__[meth]))
                    continue
                f = getattr(m, attr)
            except (ImportError, AttributeError, KeyError):
                continue
            w = _wrap(spec, f)
            for mm in list(sys.modules.values()):
                name = getattr(mm, "__name__", "")
                if mm is None or not name.startswith(("LLM_Mesh", "starlette", "uvicorn")):
                    continue
                for k, v in list(vars(mm).items()):
                    if v is f:
                        setattr(mm, k, w)

    def _dump(*_a: object) -> None:
        out = list(_ev)
        _ev.clear()
        with open(os.environ["GW_TIMELINE_OUT"] + f".{os.getpid()}.json", "w") as fh:
            json.dump(out, fh)

    signal.signal(signal.SIGUSR1, _dump)
    import LLM_Mesh.registry.app
    import LLM_Mesh.registry.pipeline  # noqa: F401

    _install()
