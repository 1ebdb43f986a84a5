"""Helpers for the dashboard's tests without sockets: the in-process mesh with traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.ledger_entry import Transfer
from tests.inprocess_mesh import InProcessMesh

MODEL = "gemma-3-270m"


@pytest.fixture
def inprocess_mesh(tmp_path: Path) -> Iterator[InProcessMesh]:
    """The real registry app with settlement off: the ledger starts empty (no community
    pool top-up), so the ledger pages show only what each test appends."""
    mesh = InProcessMesh(tmp_path / "mesh", settlement=False).start()
    # every request renders its page: these tests read a page right after a change (pages
    # shared for a second: tests/registry/test_public_reads.py)
    mesh.app.state.dashboard.render_ttl_s = 0.0
    try:
        yield mesh
    finally:
        mesh.close()


def chat(mesh: InProcessMesh, n: int = 1, *, stream: bool = False, model: str = MODEL) -> None:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stream": stream,
    }
    with mesh.sync_client() as c:
        for _ in range(n):
            r = c.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text


def flush(mesh: InProcessMesh) -> None:
    """Submitted records reach the observers at once; this also writes them to the store."""
    mesh.call(mesh.app.state.runtime.writer.flush())


def ledger_entries(mesh: InProcessMesh, n: int, *, checkpoint: bool = True) -> None:
    rt = mesh.app.state.runtime
    for i in range(n):
        mesh.call(rt.ledger.append_one(Transfer("grant", "mint", "pool", 1_000_000 + i)))
    if checkpoint:
        mesh.call(rt.checkpointer.checkpoint())
