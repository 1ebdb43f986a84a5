"""A node answering with a status that is neither an answer (200) nor an error (a 302, a
204, a 299), through the real mesh in process (``tests/inprocess_mesh.py``: the real
registry and gateway, a real sim node beside the hostile one): the node's failure, as a 500
is (``core/failover.status_outcome``). The request fails over to the healthy node, the
hostile node is counted as failed and ejected at once (as a 500 ejects:
``tests/registry/test_failover.py::test_hard_failure_ejects_then_slow_start``), the redirect
is never followed and its ``Location`` never reaches the client; streamed and not.

Found 2026-12-03: the client got a 502 with no failover, the attempt was neutral
(``CANCELLED``): the node's health stayed 1.0 and it was never ejected, so one node denied
service to every request routed to it, for ever. See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from tests.inprocess_mesh import InProcessMesh
from tests.registry.helpers import rank

MODEL = "gemma-3-270m"
TRAP = "http://metadata.nodes.test:8801"  # where the hostile node's redirect points


class Recorder:
    """An ASGI app that counts the calls it gets (the redirect's target)."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.hits.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Hostile:
    """A node's app whose inference paths answer ``status`` (with a ``Location`` to
    :data:`TRAP` and a body of its own); everything else is the real node's."""

    def __init__(self, app: Any, status: int) -> None:
        self.app, self.status = app, status
        self.hits = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.hits += 1
        more = True
        while more:  # the request's body, read whole
            more = (await receive()).get("more_body", False)
        body = b"" if self.status == 204 else b'{"error": {"message": "moved: follow me"}}'
        headers = [(b"location", f"{TRAP}/latest/meta-data/".encode()),
                   (b"content-type", b"application/json")]  # fmt: skip
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _nodes(mesh: InProcessMesh) -> dict[str, dict[str, Any]]:
    """What ``GET /mesh/nodes`` shows of each node now (built afresh: the endpoint keeps
    its listing up to a second)."""

    async def views() -> dict[str, dict[str, Any]]:
        routing = mesh.app.state.runtime.routing  # type: ignore[union-attr]
        return {v.node_id: v.model_dump(mode="json") for v in routing.views()}

    return mesh.call(views())


def _ask(mesh: InProcessMesh, stream: bool) -> tuple[str, str]:
    """One request; its answer's node and its text (a stream's content, in order)."""
    body = {"model": MODEL, "stream": stream, "max_tokens": 8,
            "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert "location" not in r.headers and "follow me" not in r.text and TRAP not in r.text
    if not stream:
        return r.headers["x-mesh-node"], r.json()["choices"][0]["message"]["content"]
    lines = [ln[5:].strip() for ln in r.text.split("\n") if ln.startswith("data:")]
    assert lines[-1] == "[DONE]", r.text[-300:]
    chunks = [json.loads(ln) for ln in lines[:-1]]
    assert not any("error" in c for c in chunks), r.text[-300:]
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    return r.headers["x-mesh-node"], text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [302, 204, 299])
def test_a_node_answering_neither_an_answer_nor_an_error_fails_over_and_is_ejected(
    inprocess_mesh: InProcessMesh, status: int, stream: bool
) -> None:
    mesh = inprocess_mesh
    mesh.add_node(MODEL, "good", answer_tokens=5)
    mesh.add_node(MODEL, "bad", answer_tokens=5)
    good, bad = mesh.id_of("good"), mesh.id_of("bad")
    hostile = Hostile(mesh.nodes["bad"].app, status)
    trap = Recorder()
    mesh.router.mount(mesh.nodes["bad"].url, hostile)  # type: ignore[arg-type]
    mesh.router.mount(TRAP, trap)  # type: ignore[arg-type]
    runtime = mesh.app.state.runtime  # type: ignore[union-attr]

    async def bad_first() -> None:  # the router thinks the hostile node the faster
        rank(runtime.routing.router, [bad, good], MODEL, runtime.clock())

    mesh.call(bad_first())
    before = _nodes(mesh)[bad]
    assert before["health_score"] == 1.0 and before["ejected"] is False

    node, text = _ask(mesh, stream)
    assert hostile.hits == 1  # it was tried first...
    assert node == good and text  # ...and the request failed over to the healthy node
    assert trap.hits == []  # the redirect was never followed
    view = _nodes(mesh)
    assert view[bad]["failures"] == 1 and view[bad]["health_score"] < 1.0
    assert view[bad]["ejected"] is True and view[bad]["ejections"] == 1  # at once, as a 500
    assert view[good]["ejected"] is False and view[good]["failures"] == 0

    for _ in range(3):  # ejected: not tried again while it is
        assert _ask(mesh, stream)[0] == good
    assert hostile.hits == 1 and trap.hits == []
