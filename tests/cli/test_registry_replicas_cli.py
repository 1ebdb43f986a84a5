"""Every command whose ``--registry`` says "several replicas as URL,URL,... (tried in turn)"
tries them in turn. Found 2026-12-03 (a new user's walk): ``ledger verify``, ``ledger
witness``, ``earnings``, ``receipt verify``, ``node plan``, ``balance`` and ``registry canary
run`` asked only the first URL and
stopped at "no LLM Mesh registry answered" when it was down, the others never asked. A dead
port (refused), a live stdlib server on loopback, then another dead port: the live one must
be asked (not only the last: testdup38 found these passed 7 of 7 with
``common.first_answering`` asking none of the replicas before the last, when the live one
was the last)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.cli.registry_404 import serve_http

runner = CliRunner()


@pytest.fixture
def replicas() -> Iterator[tuple[str, list[str]]]:
    """``http://DEAD,http://LIVE,http://DEAD2`` and the paths LIVE was asked."""
    with socket.socket() as a, socket.socket() as b:  # ports nothing listens on: refused
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        dead = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in (a, b)]
    with serve_http() as (live, paths, _):
        yield f"{dead[0]},{live},{dead[1]}", paths


@pytest.mark.parametrize(
    "command",
    [
        ["ledger", "verify"],
        ["ledger", "witness"],
        ["earnings", "--operator-token", "lmo_x"],
        ["receipt", "verify", "-"],
        ["node", "plan"],
        ["balance"],
        ["registry", "canary", "run"],
    ],
)
def test_the_next_replica_is_asked_when_the_first_is_down(
    replicas: tuple[str, list[str]], command: list[str]
) -> None:
    urls, asked = replicas
    runner.invoke(
        app, [*command, "--registry", urls], input="{}", env={"LLM_MESH_ADMIN_KEY": "lma_x"}
    )
    assert asked, f"{' '.join(command)} never asked the second replica (the live one)"
