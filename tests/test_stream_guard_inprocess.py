"""The stream guard through the real mesh in process (``tests/inprocess_mesh.py``: the
real registry and gateway, real sim nodes): a custom model's stream without
``max_tokens`` is held to the context of the node that serves it.

(The floor per node is proved in ``tests/registry/test_hostile_node_streams.py``: the
in-process transport hands the gateway a node's whole answer at once, so no stream here
is ever slow.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.node.keys import load_or_create_key
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.inprocess_mesh import InProcessMesh

MODEL = "house-model-7b"  # custom: in no catalog
SMALL, BIG = 64, 512


def _keys_in_order(home: Path, first: str, second: str) -> None:
    """Key files for nodes ``first`` and ``second`` with ``first``'s node id the smaller:
    the listing showed the custom model with the first node id's context."""
    keys = home / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    a, b = keys / f"{first}.key", keys / f"{second}.key"
    if load_or_create_key(a).node_id > load_or_create_key(b).node_id:
        tmp = keys / "swap.key"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)


def _stream(text: str) -> tuple[int, dict[str, Any]]:
    """The content chunks of a client stream and its final chunk (with ``usage``)."""
    lines = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:")]
    assert lines[-1] == "[DONE]", text[-300:]
    chunks = [json.loads(ln) for ln in lines[:-1]]
    assert not any("error" in c for c in chunks), text[-300:]
    said = sum(1 for c in chunks for ch in c.get("choices") or [] if ch["delta"].get("content"))
    return said, chunks[-1]


async def test_a_custom_models_stream_is_held_to_its_own_nodes_context(
    inprocess_mesh: InProcessMesh,
) -> None:
    mesh = inprocess_mesh
    _keys_in_order(mesh.settings.home, "small", "big")
    # both answer 200 tokens when asked for no max_tokens: the big node honestly (its context
    # is 512), the small one past its own context of 64
    mesh.add_node(MODEL, "small", context_length=SMALL, answer_tokens=200)
    mesh.add_node(MODEL, "big", context_length=BIG, answer_tokens=200)
    small, big = mesh.id_of("small"), mesh.id_of("big")
    assert small < big  # the listing's node was the small one
    # a custom model's requests need an API key (the pool pays for catalog models only)
    assert mesh.app is not None
    ledger = mesh.app.state.runtime.ledger
    made = mesh.call(create_api_key(mesh.store))
    assert made is not None and ledger is not None
    mesh.call(ledger.append_one(Transfer("grant", MINT, user_account(made[1].key_id), 10**9)))
    auth = {"Authorization": f"Bearer {made[0]}"}

    async def ask(node: str) -> tuple[int, dict[str, Any]]:
        body = {"model": MODEL, "stream": True, "allow_nodes": [node],
                "messages": [{"role": "user", "content": "tell me everything"}]}  # fmt: skip
        r = await mesh.client().post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers["x-mesh-node"] == node
        return _stream(r.text)

    said, final = await ask(big)  # before: cut off at the small node's 64 tokens
    assert said == 200 and final["usage"]["completion_tokens"] == 200
    assert final["choices"] == [] or final["choices"][0].get("finish_reason") != "length"

    said, final = await ask(small)  # the small node is held to its own context
    assert said == SMALL and final["usage"]["completion_tokens"] == SMALL

    models = (await mesh.client().get("/mesh/models")).json()["models"]
    listed = next(m for m in models if m["id"] == MODEL)
    assert listed["context_length"] == BIG  # what the estimate is priced at: the largest
