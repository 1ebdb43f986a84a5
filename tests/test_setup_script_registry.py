"""./setup-node-operator.sh says when no registry answers at the URL the node will use.

Found 2026-12-07 (newuser44): the migration guide's bare ``./setup-node-operator.sh``, with
no registry at the default ``http://127.0.0.1:8800``, installed and started a node whose log
only said "registry unreachable" every few seconds, nothing said before it started."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.setup_script import run

SIM = ("--yes", "--dry-run", "--engine", "sim", "--models", "mistral-7b")
NOTE = "no registry answers at"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # any answer is an answer: a 404 too
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def answering() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_nobody_answers_at_is_said_before_the_node_starts(tmp_path: Path) -> None:
    silent = f"http://127.0.0.1:{free_port()}"
    said = " ".join(run(tmp_path, *SIM, "--registry", silent).stdout.split())
    assert f"note: {NOTE} {silent} now" in said, said
    assert "--registry URL" in said and "llm-mesh up --allow-local-nodes" in said


def test_a_registry_that_answers_is_not_noted(tmp_path: Path, answering: str) -> None:
    said = " ".join(run(tmp_path, *SIM, "--registry", answering).stdout.split())
    assert NOTE not in said, said


def test_of_several_registries_only_the_silent_ones_are_named(
    tmp_path: Path, answering: str
) -> None:
    silent = f"http://127.0.0.1:{free_port()}"
    said = " ".join(run(tmp_path, *SIM, "--registry", f"{answering},{silent}").stdout.split())
    assert f"{NOTE} {silent} now" in said and answering not in said.split(NOTE, 1)[1], said
