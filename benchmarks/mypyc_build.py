"""Compile the gateway's hot modules with mypyc, in place, for an experiment (issue 7).

Not part of the install: ``make install`` builds nothing. This script turns a checkout
into a "compiled tree": each listed module gets a C extension (``*.so``) beside its
``.py`` (CPython's import prefers the extension), plus one shared ``*__mypyc*.so`` at
the tree's root; a before/after run then points ``--baseline-tree`` of
``probe_gateway_cpu.py`` / ``bench_gateway.py`` at a pure checkout of the same commit.
``--clean`` removes every ``.so`` under ``LLM_Mesh/``, the root's ``*__mypyc*.so``,
``build/`` and ``.mypy_cache/`` again. Modules named in ``REFUSED`` stay interpreted:
mypyc rejects them, or compiling them broke the running registry or node (each with the
reason). Result (2026-12-05): 0-8 % off the loop's CPU a request, not adopted; see
docs/benchmarks.md.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/mypyc_build.py [--tree DIR] [--clean]
        [--list] [--only MOD.py ...] [--opt-level 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# the non-streamed request's path: every LLM_Mesh module with >= 0.05 % of the loop
# thread's own time in probe_gateway_cpu.py's profile (10 concurrent), 2026-12-05
HOT = """
registry/http1 registry/account core/receipt registry/send registry/parse hot_routes
registry/pipeline logs registry/settlement core/balancer core/delivered core/pricing
registry/admit core/gateway_auth registry/routing registry/node_table core/stream_guard
registry/charge core/limits core/scoring registry/job registry/metrics core/strict_json
registry/settle_db registry/settle_db_sqlite registry/settle_ops core/failover core/receipt_check registry/gateway body_limit
core/traffic registry/access registry/access_anonymous core/lease_book core/answer_text core/ewma
registry/settle_lease core/sketch slow_clients registry/hot_heartbeat registry/node_client
core/identity core/retry registry/store registry/relay registry/telemetry gc_freeze
lifespan_loop registry/dashboard/feed server_process core/indexed_set core/ed25519
registry/demand registry/api_keys registry/settle_upkeep registry/request_log
registry/quality registry/errors registry/runtime core/validation core/catalog
core/schemas core/rewards metrics_http registry/address_pins registry/extensions
core/withheld registry/ledger_signer json_answer
""".split()  # noqa: SIM905

# module -> why it stays interpreted (filled in from the experiment's build and runs).
# Still compiled but broken: registry/metrics and registry/gateway, whose GET /metrics and
# GET /v1/models answer 500 ("takes at most 1 argument (3 given)": Starlette's Route does
# not see a compiled function as a request handler and calls it as an ASGI app); neither
# is on the measured request's path. See docs/benchmarks.md (2026-12-05, mypyc).
REFUSED: dict[str, str] = {
    "registry/node_client": "async generators are unimplemented in mypyc (7 sites)",
    "registry/relay": "async generators are unimplemented in mypyc (3 sites)",
    "core/schemas": "pydantic models: the generated C names an undeclared "
    "`CPyModule_pydantic___main` (gcc error; mypyc 2.4.1)",
    "lifespan_loop": "its LifespanLoop is subclassed by interpreted heap._TrimPeriodically "
    "and worker_beat._Beating: 'interpreted classes cannot inherit from compiled' when "
    "the registry starts",
    "registry/settle_upkeep": "keeps its fail streaks in `self.__dict__` (a native class "
    "has none: AttributeError in the upkeep loop)",
    "registry/settlement": "Settlement subclasses settle_upkeep.SettleUpkeep (left interpreted)",
    "slow_clients": "guarded_http() makes uvicorn's protocol class with type(name, "
    "(_Guarded,), attrs) per server: 'interpreted classes cannot inherit from compiled' "
    "on the first connection",
    "registry/settle_db": "the writer for a store's URL and the names of the two below "
    "(split from it, small45; it stayed interpreted whole before)",
    "registry/settle_ops": "its Reserved is subclassed by settle_lease (see there); split "
    "from registry/settle_db (small45), which stayed interpreted whole",
    "registry/settle_db_sqlite": "_one()'s declared return type (Reserved | bool | None, kept "
    "by a type: ignore[no-any-return]) is untrue: mypyc checks it at run time and raises "
    "TypeError on settle_lease.Spent, so no answer is recorded",
    "registry/settle_lease": "its frozen dataclasses subclass settle_ops.Reserved (left "
    "interpreted): AttributeError at import (a type's __dict__ is not writable)",
    "hot_routes": "mypyc bug (like mypyc/mypyc#1177): the compiled app() awaits the "
    "node's interpreted endpoint, which swallows a CancelledError from `await watcher`; "
    "the compiled coroutine re-raises it at its next await (_respond), so the sim "
    "node closes every connection after its answer (registry: 502 ServerDisconnected)",
    "core/retry": "assigns an int to an attribute inferred float (`-math.inf`): "
    "mypyc's value representations differ (a one-line annotation would fix it)",
}


def modules(only: list[str]) -> list[str]:
    names = only or [f"LLM_Mesh/{m}.py" for m in HOT if m not in REFUSED]
    return [n for n in names if n.removeprefix("LLM_Mesh/").removesuffix(".py") not in REFUSED]


def clean(tree: Path) -> None:
    for so in [*tree.glob("LLM_Mesh/**/*.so"), *tree.glob("*__mypyc*.so")]:
        so.unlink()
    shutil.rmtree(tree / "build", ignore_errors=True)
    shutil.rmtree(tree / ".mypy_cache", ignore_errors=True)


def _lenient_signatures() -> None:
    """mypyc (2.4.1) builds each method's text signature with ``inspect.Signature``,
    which rejects ``def f(a, b=None, *, c)`` (valid Python: ``Settlement.__init__``)
    as "non-default argument follows default argument"; skip that check."""
    import inspect

    init = inspect.Signature.__init__

    def lenient(self: inspect.Signature, *a: Any, **kw: Any) -> None:
        kw["__validate_parameters__"] = False
        init(self, *a, **kw)

    inspect.Signature.__init__ = lenient  # type: ignore[method-assign]


def build(tree: Path, names: list[str], opt_level: str) -> None:
    from mypyc.build import mypycify

    _lenient_signatures()
    from setuptools import Distribution, setup

    class NoConfig(Distribution):  # the project's pyproject.toml is not a setuptools one
        def parse_config_files(self, *a: Any, **kw: Any) -> None:
            pass

    os.chdir(tree)  # mypy reads pyproject.toml's [tool.mypy] from here
    t0 = time.monotonic()
    ext = mypycify(names, opt_level=opt_level, multi_file=True)  # C files in parallel
    setup(
        name="llm-mesh-mypyc-experiment",
        ext_modules=ext,
        distclass=NoConfig,
        script_args=["build_ext", "--inplace", "--parallel", "2"],
    )
    print(f"mypyc: {len(names)} modules compiled in {time.monotonic() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=".")
    ap.add_argument("--clean", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the modules and stop")
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--opt-level", default="3")
    args = ap.parse_args()
    tree = Path(args.tree).resolve()
    names = modules(args.only)
    if args.list:
        print("\n".join(names))
        return
    clean(tree)
    if not args.clean:
        build(tree, names, args.opt_level)
    sys.exit(0)


if __name__ == "__main__":
    main()
