"""attack45: a node id in a heartbeat's or goodbye's path is counted per id
(``registry/valid_rates.py``) as the request begins, before anything is checked; a made-up id
is given back, but its entry stays while an older one still counts (a node that sent its
minute's beats at once keeps its own counting for a minute). Found 2026-12-07 (attack45,
a real registry on loopback): a node's 23 beats at once, then one client's heartbeats to
made-up ids of 60,000 characters (no signature: each refused at once) held every one, up to
the 10,000 ids counted: the registry grew from 139 to 575 MB in 40 s (a path may be ~300 KB
long: ~3 GB). A path's id longer than any node id (``MAX_NODE_ID_CHARS``) is now refused
before it is counted, its id not said back."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from LLM_Mesh.core.identity import MAX_NODE_ID_CHARS, MessageKind
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.valid_rates import beats_per_min
from tests.registry.node_auth_mesh import Wall, beat, make_node, mesh, operator, register

BOUND = beats_per_min(10.0)


async def test_made_up_long_ids_are_refused_before_they_are_counted(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        for _ in range(BOUND):  # its minute's beats at once: its count stays a minute
            assert (await beat(h, node)).status_code == 200
        counted = h.runtime.limiter.per_id("valid-beat", BOUND)
        assert len(counted) == 1
        for i in range(50):
            made_up = f"x{i}-" + "a" * 10_000
            for method, path in (
                ("POST", f"/mesh/nodes/{made_up}/heartbeat"),
                ("DELETE", f"/mesh/nodes/{made_up}"),
            ):
                r = await h.client.request(method, path, content=b"{}")
                assert r.status_code == 400, r.text
                assert r.json()["error"]["param"] == "node_id"
                assert made_up not in r.text  # not said back
        assert len(counted) == 1  # the node's own alone
        # an id as long as any node id's is still looked at (and refused for what it is)
        longest = "n" * MAX_NODE_ID_CHARS
        r = await h.client.post(f"/mesh/nodes/{longest}/heartbeat", content=b"{}")
        assert r.status_code == 401, r.text


async def test_an_id_with_a_line_break_is_refused_not_an_internal_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-07 (attack45, against ``llm-mesh up``): a heartbeat or goodbye to
    ``/mesh/nodes/a%0Ab/...`` signed in the name of a listed node (any signature) reached
    ``identity.signed_bytes``, which refuses a target of two lines: a ``ValueError``, a 500
    and an ERROR with its traceback in the registry's log, per request, from anyone. Now 400
    ``node_id`` before anything is counted or checked; a control character alike."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        counted = h.runtime.limiter.per_id("valid-beat", BOUND)
        for made_up in ("a\nb", f"{node.node_id}\n", "\n", "a\tb", "a\x00b", "a\x7fb"):
            path = "/mesh/nodes/" + quote(made_up, safe="")
            for method, kind, url in (
                ("POST", MessageKind.HEARTBEAT, path + "/heartbeat"),
                ("DELETE", MessageKind.DEREGISTER, path),
            ):
                signed = node.headers(kind, b"{}")  # the node's own headers, another target
                r = await h.client.request(method, url, content=b"{}", headers=signed)
                assert r.status_code == 400, (made_up, r.text)
                assert r.json()["error"]["param"] == "node_id"
        assert len(counted) == 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert (await beat(h, node)).status_code == 200  # the node's own beats as ever
