"""``registry serve``'s checks before uvicorn starts, while PostgreSQL terminates their
connection (real PostgreSQL): waited for; a database that refuses is still said at once.

Found 2026-12-06: a connection terminated while ``database_unreachable`` opened it was
"cannot reach the database", exit 1, though the database was there.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.registry.store_checks import checks_retry, database_unreachable, store_unusable
from tests.registry.test_start_retry_pg import TURNS, Terminator, terminating

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(pg_database_url: str) -> str:
    return normalize_database_url(pg_database_url)  # as registry serve has it


@pytest.fixture
def terminator(pg_database_url: str) -> Iterator[Terminator]:
    with terminating(pg_database_url) as t:
        yield t


async def test_a_connection_terminated_while_the_check_opens_it_is_tried_again(
    url: str, terminator: Terminator
) -> None:
    assert await database_unreachable(url, start=checks_retry(url)) is None
    assert terminator.killed == len(TURNS)


def test_the_checks_wait_out_terminated_connections(url: str, terminator: Terminator) -> None:
    assert store_unusable(url) is None
    assert terminator.killed == len(TURNS)


def test_a_database_that_refuses_is_still_said_at_once(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = normalize_database_url(f"postgresql://mesh:hunter2@127.0.0.1:{port}/mesh")
    began = time.monotonic()
    said = store_unusable(url)  # nothing listens there: refused
    assert said is not None and said.startswith("cannot reach the database at "), said
    assert "Connect call failed" in said or "refused" in said, said
    assert "hunter2" not in said and time.monotonic() - began < 5.0


def test_a_bad_setting_in_the_url_is_said_at_once() -> None:
    """asyncpg says a bad URL setting as an ``InterfaceError`` (``ClientConfigurationError``):
    not a lost connection. Found 2026-12-06 (review37): ``?ssl=bogus`` made ``registry
    serve`` wait 120 s, each try a WARNING that the database "lost or refused the
    connection", before saying it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = normalize_database_url(f"postgresql://mesh:hunter2@127.0.0.1:{port}/mesh?ssl=bogus")
    began = time.monotonic()
    said = store_unusable(url)
    assert said is not None and "?ssl=bogus is not a mode" in said, said  # pg_connect's
    assert "hunter2" not in said and time.monotonic() - began < 5.0


@contextlib.contextmanager
def _not_postgresql(answer: bytes | None) -> Iterator[str]:
    """A URL whose port is another service's: one that answers ``answer`` to anything (an
    HTTP server, say), or never answers (``None``: a port that swallows what it gets)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port, peers = server.getsockname()[1], []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            peers.append(conn)
            if answer is not None:
                with contextlib.suppress(OSError):
                    conn.recv(64)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield normalize_database_url(f"postgresql://mesh:hunter2@127.0.0.1:{port}/mesh")
    finally:
        stop.set()
        thread.join(5)
        for conn in peers:
            conn.close()
        server.close()


@pytest.mark.parametrize("answer", [b"HTTP/1.1 400 Bad Request\r\n\r\n", None])
async def test_a_port_that_is_not_postgresql_is_said_at_once(answer: bytes | None) -> None:
    """Found 2026-12-06 (review37): ``--database-url`` naming another service's port (its
    answer to PostgreSQL's SSL request "rejected SSL upgrade", or none: a connect that times
    out) was tried again for 120 s, each try a WARNING that the database "lost or refused
    the connection"; a refused port was said at once."""
    with _not_postgresql(answer) as url:
        began = time.monotonic()
        said = await database_unreachable(url, timeout_s=1.0, start=checks_retry(url))
        took = time.monotonic() - began
    assert said is not None and said.startswith("cannot reach the database at "), said
    assert "hunter2" not in said and took < 5.0, (took, said)


async def test_the_urls_timeout_is_the_checks() -> None:
    """Found 2026-12-07 (start40): the check's own 10 s connect timeout overrode the URL's
    ``?timeout=``: a port that never answers took 10 s to be said with ``?timeout=1``."""
    with _not_postgresql(None) as url:
        began = time.monotonic()
        said = await database_unreachable(f"{url}?timeout=1")  # the default timeout_s: 10
        took = time.monotonic() - began
    assert said is not None and said.startswith("cannot reach the database at "), said
    assert took < 5.0, took


@pytest.mark.parametrize(("query", "waited"), [("?timeout=30", 30.0), ("", 10.0)])
async def test_a_longer_timeout_in_the_url_is_honoured_too(
    query: str, waited: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's timeout, longer than the check's default as well (a slow link): the
    check judges the database by the connection the store's engines open."""
    import LLM_Mesh.registry.store_checks as store_checks

    seen: list[object] = []

    def engine_for(url: str, **kw: dict[str, object]) -> object:
        seen.append(kw["connect_args"]["timeout"])
        raise ConnectionRefusedError("not tried")

    monkeypatch.setattr(store_checks, "engine_for", engine_for)
    said = await database_unreachable(f"postgresql://mesh@127.0.0.1:1/mesh{query}")
    assert said is not None and "not tried" in said
    assert seen == [waited]
