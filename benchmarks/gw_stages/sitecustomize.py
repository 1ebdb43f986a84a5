"""Benchmark-only: the registry's thread CPU in chosen functions, for
``benchmarks/probe_gateway_stages.py``.

The probe starts its mesh with this folder first on ``PYTHONPATH``, ``GW_STAGES`` (a comma
list of ``module:function`` or ``module:Class.method``) and ``GW_STAGES_OUT`` (a path
prefix) set. In a process started as ``LLM_Mesh.cli registry`` each named function is
wrapped to add up its thread CPU time (``time.thread_time_ns``) and its calls; a coroutine
function's time is that of each of its steps (what runs between two suspensions, nested
calls included), so the time it waits is not counted. A module-level function is replaced
wherever a loaded ``LLM_Mesh``/``starlette``/``uvicorn`` module holds it by name. SIGUSR1
writes ``<GW_STAGES_OUT>.<pid>.json`` (name -> [ns, calls]) and zeroes the sums. A name
the tree lacks is skipped (not listed), so that trees of different code run with one list. Inclusive
times: a function's figure holds the functions it calls. The package has no such hook.
"""

import os
import sys

if "registry" in sys.argv and os.environ.get("GW_STAGES_OUT"):
    import functools
    import importlib
    import inspect
    import json
    import signal
    import time

    _acc: dict = {}
    _tt = time.thread_time_ns

    class _Timed:
        __slots__ = ("coro", "slot")

        def __init__(self, coro, slot):  # type: ignore[no-untyped-def]
            self.coro, self.slot = coro, slot

        def __await__(self):  # type: ignore[no-untyped-def]
            coro, slot = self.coro, self.slot
            val, exc = None, None
            while True:
                t = _tt()
                try:
                    y = coro.throw(exc) if exc is not None else coro.send(val)
                except StopIteration as e:
                    slot[0] += _tt() - t
                    slot[1] += 1
                    return e.value
                except BaseException:
                    slot[0] += _tt() - t
                    slot[1] += 1
                    raise
                slot[0] += _tt() - t
                try:
                    val, exc = (yield y), None
                except BaseException as e:
                    val, exc = None, e

    def _wrap(name, f):  # type: ignore[no-untyped-def]
        slot = _acc.setdefault(name, [0, 0])
        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def aw(*a, **k):  # type: ignore[no-untyped-def]
                return await _Timed(f(*a, **k), slot)

            return aw

        @functools.wraps(f)
        def w(*a, **k):  # type: ignore[no-untyped-def]
            t = _tt()
            try:
                return f(*a, **k)
            finally:
                slot[0] += _tt() - t
                slot[1] += 1

        return w

    def _install() -> None:
        for spec in os.environ.get("GW_STAGES", "").split(","):
            if not spec:
                continue
            mod, _, attr = spec.partition(":")
            try:  # a name this tree lacks (another tree's): skipped, the others wrapped
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
        out = {k: list(v) for k, v in _acc.items()}
        for v in _acc.values():
            v[0] = v[1] = 0
        with open(os.environ["GW_STAGES_OUT"] + f".{os.getpid()}.json", "w") as fh:
            json.dump(out, fh)

    signal.signal(signal.SIGUSR1, _dump)
    import LLM_Mesh.registry.app
    import LLM_Mesh.registry.pipeline  # noqa: F401

    _install()
