"""``server_process.py``: the stop-signal hook, a second signal, the port check. The server
runs in a thread (uvicorn installs no signal handlers there); the test calls its handler as
the signal would."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from LLM_Mesh.server_process import (
    LISTEN_FD_ENV,
    PortInUse,
    SignalServer,
    exit_on_signal,
    inherited_socket,
    port_taken,
    require_free_port,
    shared_socket,
)
from LLM_Mesh.start_writes import RefusedStart, StartWriteRefused
from tests.e2e.conftest import free_port
from tests.waiting import SOON_S, START_S, scaled


def _app(events: list[str]) -> Any:
    """A lifespan that records its stop, and a stream that never ends by itself."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    events.append("app stopped")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/slow":  # an answer that takes long to begin
            events.append("slow started")
            await asyncio.sleep(60)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tok\n", "more_body": True})
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            events.append("stream cancelled")
            raise

    return app


def _serving(
    events: list[str], signals: list[int], app: Any = None
) -> tuple[SignalServer, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(
        app or _app(events), host="127.0.0.1", port=port, lifespan="on", log_level="warning",
        timeout_graceful_shutdown=60,  # a drain no test waits for
    )  # fmt: skip
    server = SignalServer(config, signals.append)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + scaled(START_S)
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    return server, thread, port


def test_a_second_signal_cuts_the_stream_and_the_apps_stop_still_runs() -> None:
    """Found 2026-12-03: a second Ctrl-C (uvicorn's force quit) skipped the app's stop (the
    registry's settlement and store close; the node's engine close), and the lifespan task,
    cancelled at exit, printed a traceback."""
    events: list[str] = []
    signals: list[int] = []
    server, thread, port = _serving(events, signals)
    with httpx.stream("GET", f"http://127.0.0.1:{port}/", timeout=10) as r:
        chunks = r.iter_bytes()
        assert next(chunks)
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        time.sleep(0.5)
        assert thread.is_alive() and events == []  # the stream drains
        server.handle_exit(signal.SIGINT, None)
        thread.join(10)
        assert not thread.is_alive()
    assert events == ["stream cancelled", "app stopped"]
    assert signals == [signal.SIGTERM, signal.SIGINT]


def test_one_signal_drains_then_stops() -> None:
    events: list[str] = []
    server, thread, _port = _serving(events, [])
    server.handle_exit(signal.SIGINT, None)
    thread.join(10)
    assert not thread.is_alive() and events == ["app stopped"] and not server.force_exit


def test_a_taken_port_is_said_with_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        assert port_taken("127.0.0.1", port)
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use: do X"):
            require_free_port("127.0.0.1", port, ": do X")
    assert not port_taken("127.0.0.1", port)
    require_free_port("127.0.0.1", port, ": do X")  # free: nothing said


def test_a_signal_while_loading_exits_at_once_and_the_handlers_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.server")
    before = signal.getsignal(signal.SIGTERM)
    exits: list[int] = []
    with exit_on_signal("loading the model", exit=exits.append):
        signal.raise_signal(signal.SIGTERM)  # the handler runs in this (the main) thread
    assert exits == [0]
    [record] = caplog.records
    assert record.getMessage() == (
        "SIGTERM while loading the model: exiting now (nothing serves yet)"
    )
    assert signal.getsignal(signal.SIGTERM) is before  # serving, uvicorn's take over


def test_a_request_a_second_signal_cuts_before_its_answer_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-04 (registry serve --workers 2, a completion in flight, SIGTERM twice):
    the client got ``HTTP 500: Internal Server Error`` and the log uvicorn's ERROR
    ``Exception in ASGI application`` with a CancelledError traceback."""
    events: list[str] = []
    server, thread, port = _serving(events, [])
    got: dict[str, Any] = {}

    def ask() -> None:
        r = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10)
        got["status"], got["text"] = r.status_code, r.text

    asker = threading.Thread(target=ask)
    with caplog.at_level(logging.INFO):
        asker.start()
        deadline = time.monotonic() + scaled(SOON_S)
        while "slow started" not in events:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.handle_exit(signal.SIGTERM, None)
        time.sleep(0.3)
        server.handle_exit(signal.SIGTERM, None)
        asker.join(10)
        thread.join(10)
    assert not thread.is_alive() and not asker.is_alive()
    assert got["status"] == 500
    assert "a second stop signal" in json.loads(got["text"])["error"]["message"], got
    assert "Exception in ASGI application" not in caplog.text
    assert "Traceback" not in caplog.text


def test_the_shared_socket_is_bound_once_and_says_a_taken_port() -> None:
    sock = shared_socket("127.0.0.1", 0)
    with sock:
        port = int(sock.getsockname()[1])
        assert not sock.get_inheritable()  # a worker gets it by pass_fds, nothing else
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0  # bound once
        sock.listen()  # as worker 0's server does once started
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use: do X"):
            shared_socket("127.0.0.1", port, ": do X")
    with pytest.raises(ValueError, match=r"cannot listen on 192\.0\.2\.1:"):  # not this machine's
        shared_socket("192.0.2.1", port)


def test_a_worker_serves_the_socket_handed_down_and_hands_it_no_further() -> None:
    with shared_socket("127.0.0.1", 0) as sock:
        fd = os.dup(sock.fileno())
        env = {LISTEN_FD_ENV: str(fd), "OTHER": "1"}
        got = inherited_socket(env)
        with got:
            assert got.getsockname() == sock.getsockname() and got.fileno() == fd
            assert not got.get_inheritable() and env == {"OTHER": "1"}
    for env in ({}, {LISTEN_FD_ENV: "x"}, {LISTEN_FD_ENV: "999999"}):
        with pytest.raises(ValueError, match="--worker-index is for the workers"):
            inherited_socket(env)


def _answering(events: list[str], fail_start: BaseException | None = None) -> Any:
    """A lifespan that records its stop (or whose start raises ``fail_start``, as Starlette's
    router does: ``lifespan.startup.failed`` sent, then raised), and a short answer."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup" and fail_start is not None:
                    await send({"type": "lifespan.startup.failed", "message": "Traceback"})
                    raise fail_start
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    events.append("app stopped")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_request_does_not_pass_through_the_starts_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """perf43: ``start_writes.RefusedStart`` wrapped every request's ASGI call (one awaited
    layer a request) for a failure only the lifespan's start can meet."""
    seen: list[str] = []
    call = RefusedStart.__call__

    async def counted(self: RefusedStart, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await call(self, scope, receive, send)

    monkeypatch.setattr(RefusedStart, "__call__", counted)
    events: list[str] = []
    server, thread, port = _serving(events, [], _answering(events))
    for _ in range(2):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "ok"
    server.handle_exit(signal.SIGINT, None)
    thread.join(10)
    assert not thread.is_alive() and events == ["app stopped"]
    assert seen == ["lifespan"]  # the start and the stop; neither request


def test_a_start_that_could_not_write_its_file_is_still_one_line() -> None:
    """The lifespan alone through ``RefusedStart`` (above): a full disk at the start is
    still its one line (``server.refusal``, :class:`StartWriteRefused`), not exit 3."""
    full = OSError(errno.ENOSPC, "No space left on device", "/h/settlement.holder")
    config = uvicorn.Config(
        _answering([], full), host="127.0.0.1", port=free_port(), lifespan="on",
        log_level="critical",
    )  # fmt: skip
    server = SignalServer(config, what="the registry")
    raised: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(scaled(START_S))
    assert not thread.is_alive() and [type(e) for e in raised] == [StartWriteRefused]
    assert str(raised[0]).startswith(
        "the registry could not write /h/settlement.holder (no space left on its disk)"
    )
