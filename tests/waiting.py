"""How long a test waits for something it can observe (docs/testing.md, "Waiting").

A test that starts processes waits for what it can see (a ``/healthz``, a row, a log line),
polling until a deadline, never a fixed sleep: the deadline only bounds a failure, so it is
generous. On the shared 2-core box at load 13–18 (2026-12-06, flaky36) a registry took
98.5 s to answer its first ``/healthz`` and ``llm-mesh --version`` 13.6–18.0 s to start.
``LLM_MESH_TEST_TIME_FACTOR`` (default 1) multiplies every such deadline, for a slower box.
"""

from __future__ import annotations

import os

#: multiplies the deadlines below (a number > 0; unset or empty: 1)
FACTOR_ENV = "LLM_MESH_TEST_TIME_FACTOR"
#: a process's start: its imports, migrations, a model's load, its registration
START_S = 300.0
#: something a running process does within a few of its 1 s intervals (a heartbeat, a
#: poll of the store, a flush)
SOON_S = 60.0


def factor() -> float:
    raw = os.environ.get(FACTOR_ENV, "").strip()
    value = float(raw) if raw else 1.0
    if not value > 0:
        raise ValueError(f"{FACTOR_ENV} must be a number > 0, not {raw!r}")
    return value


def scaled(seconds: float) -> float:
    """``seconds`` × :func:`factor`: a deadline for a wait on this box."""
    return seconds * factor()
