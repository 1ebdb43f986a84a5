"""A client-chosen id's settlement key (the ledger's ``request_id``: ``c-…~suffix.tag``)
carries the first 16 hex digits of the ``req-`` id the nodes got, so the node's operator
finds the entries paying what its node served (``ledger statement --served``) without
ever learning the client's id. Through the real registry app and recording fake nodes
(``tests/registry/test_node_request_id.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from LLM_Mesh.core.served import ledger_key, record_keys
from LLM_Mesh.registry.parse import settle_key_for
from tests.registry.helpers import running
from tests.registry.test_node_request_id import MINE, _final_mesh, _node_saw
from tests.registry.test_receipts import CHAT, SigningNodes


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_ledger_key_of_a_client_chosen_id_is_found_by_the_nodes_id(
    tmp_path: Path, stream: bool
) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node = await h.register(nodes.new())
        keys = set()
        for header, given in (("X-Request-Id", MINE), ("Idempotency-Key", MINE + "-b")):
            r = await h.client.post(
                "/v1/chat/completions", json={**CHAT, "stream": stream}, headers={header: given}
            )
            assert r.status_code == 200, r.text
            mesh = _final_mesh(r.text) if stream else r.json()["mesh"]
            rid = _node_saw(node)
            node.calls.clear()
            ledger_id = mesh["ledger_request_id"]
            assert ledger_id.startswith("c-") and given not in ledger_id
            assert ledger_key(ledger_id) in record_keys(rid)
            keys.add(ledger_id)
        assert len(keys) == 2


def test_without_a_node_id_the_suffix_is_random() -> None:
    a, b = settle_key_for(MINE), settle_key_for(MINE)
    assert a != b and a.split("~")[0] == b.split("~")[0]
