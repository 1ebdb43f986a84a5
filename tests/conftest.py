"""Shared fixtures: every test runs with a clean mesh environment.

``inprocess_mesh`` is the real registry + gateway with sim nodes, in process and
without sockets (``tests/inprocess_mesh.py``); add nodes with ``add_node``.

``pg_database_url`` creates a throwaway PostgreSQL database
``llm_mesh_test_<hex>`` (another prefix: ``LLM_MESH_TEST_PG_PREFIX``) on the server named
by ``LLM_MESH_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and
drops it afterwards. When
that server cannot be reached the test is skipped, unless
``LLM_MESH_REQUIRE_PG=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg  # type: ignore[import-untyped]
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from tests.inprocess_mesh import InProcessMesh

# property tests judge what a function returns, not how fast: hypothesis's 200 ms deadline
# per example failed tests/core/test_pricing.py::test_properties at 255 ms on a busy 2-core
# box (found 2026-12-05 in a mutmut run)
settings.register_profile("mesh", deadline=None)
settings.load_profile("mesh")

_MESH_ENV = (
    "LLM_MESH_HOME",
    "LLM_MESH_REGISTRY_URL",
    "LLM_MESH_DATABASE_URL",
    "LLM_MESH_HEARTBEAT_S",
    "LLM_MESH_MISSED_HEARTBEATS",
    "LLM_MESH_HEALTH_CHECK_S",
    "LLM_MESH_REQUEST_TIMEOUT_S",
    "LLM_MESH_MAX_ATTEMPTS",
    "LLM_MESH_ADMIN_KEY",
    "LLM_MESH_OPERATOR_TOKEN",
    "LLM_MESH_LEDGER_ORIGIN",
    "LLM_MESH_LEDGER_CHECKPOINT_EVERY",
    "LLM_MESH_LEDGER_CHECKPOINT_S",
    "LLM_MESH_LEDGER_WITNESSES",
    "LLM_MESH_LEDGER_WITNESS_URLS",
    "LLM_MESH_REWARD_RATE",
    "LLM_MESH_REWARD_PERIOD_S",
    "LLM_MESH_REWARD_UPTIME_NODES",
    "LLM_MESH_METRICS",
    "LLM_MESH_METRICS_PUBLIC",
    "LLM_MESH_METRICS_TOKEN",
    "LLM_MESH_LOG_FORMAT",
    "LLM_MESH_LOG_REQUESTS",
    "LLM_MESH_SETTLEMENT",
    "LLM_MESH_NETWORK_FEE_BPS",
    "LLM_MESH_POOL_DAILY_BUDGET",
)


@pytest.fixture(autouse=True)
def clean_mesh_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's ~/.llm-mesh or registry URL."""
    for key in _MESH_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LLM_MESH_HOME", str(tmp_path / "mesh-home"))
    yield


@pytest.fixture(autouse=True)
def fixed_account_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ledger made in this process gets ``tests/keyed.py``'s account key, so tests
    name keyed accounts (``operator_account("alice")``) before a ledger exists; the tests
    of the key itself undo this (``monkeypatch.undo()``)."""
    from LLM_Mesh.registry import ledger_accounts
    from tests.keyed import TEST_ACCOUNT_KEY

    monkeypatch.setattr(ledger_accounts, "new_key", lambda: TEST_ACCOUNT_KEY)


@pytest.fixture
def inprocess_mesh(tmp_path: Path) -> Iterator[InProcessMesh]:
    """The real registry app, started, with no nodes yet; closed after the test."""
    from tests.inprocess_mesh import InProcessMesh

    mesh = InProcessMesh(tmp_path / "mesh").start()
    try:
        yield mesh
    finally:
        mesh.close()


DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _admin_dsn() -> str:
    url = os.environ.get("LLM_MESH_TEST_PG_URL") or DEFAULT_PG_URL
    # asyncpg wants a plain libpq-style DSN, without a SQLAlchemy driver suffix.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_connect() -> asyncpg.Connection:
    dsn = _admin_dsn()
    try:
        return await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = make_url(dsn).render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}: {exc!r}"
        if os.environ.get("LLM_MESH_REQUIRE_PG") == "1":
            pytest.fail(f"{message} (LLM_MESH_REQUIRE_PG=1)", pytrace=False)
        pytest.skip(message)


async def _drop_database(name: str) -> None:
    conn = await _admin_connect()
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@pytest.fixture
async def pg_database_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    # LLM_MESH_TEST_PG_PREFIX: the databases' name prefix (a shared server's own names)
    prefix = os.environ.get("LLM_MESH_TEST_PG_PREFIX") or "llm_mesh_test_"
    name = f"{prefix}{secrets.token_hex(6)}"
    conn = await _admin_connect()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop_database(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """llama-cpp-python opens two /dev/null files at import and never closes them.

    With warnings as errors, the interpreter would report them at exit; close them here.
    """
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        f = getattr(utils, name, None)
        if f is not None and not f.closed:
            f.close()
