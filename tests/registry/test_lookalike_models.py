"""A node registering a model id that only looks like a catalog id (Cyrillic ``е`` in
``gеmma-3-270m``, ``rn`` for ``m``, case only, mixed scripts) is refused: 400 naming the
field and the catalog id it imitates; nothing routed, listed or stored. Ordinary custom ids
still register. See docs/security.md, "Hostile nodes" and ``core/confusable.py``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core import schemas
from LLM_Mesh.core.schemas import MAX_MODELS_PER_NODE, NodeRegistration
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.snapshot import entry_from_record
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import registration, running
from tests.registry.node_auth_mesh import Wall, make_node, mesh

LOOKALIKES = [
    ("g\u0435mma-3-270m", "gemma-3-270m"),  # Cyrillic е
    ("gernrna-3-270m", "gemma-3-270m"),  # rn for m (ASCII only)
    ("gemma-3-27Om", "gemma-3-270m"),  # O for 0
    ("code-1lama-7b", "code-llama-7b"),  # 1 for l
    ("Mistral-7B", "mistral-7b"),  # case only
    ("\uff47\uff45\uff4d\uff4d\uff41-3-270m", "gemma-3-270m"),  # fullwidth
    ("qwen1.5-72b-\u0441hat", "qwen1.5-72b-chat"),  # Cyrillic с
]


@pytest.mark.parametrize(("model_id", "imitated"), LOOKALIKES)
async def test_a_model_id_that_looks_like_a_catalog_id_is_refused(
    tmp_path: Path, database_url: str, model_id: str, imitated: str
) -> None:
    store = SqlStore(database_url)
    async with running(tmp_path, store=store) as h:  # type: ignore[arg-type]
        await h.register("honest")
        h.nodes.add("spoof")
        reg = registration("spoof")
        reg["models"] = [
            {"id": "my-org/llama-3-8b-instruct", "engine": "sim", "custom": True},
            {"id": model_id, "engine": "sim", "custom": True},
        ]
        r = await h.client.post("/mesh/nodes", json=reg)
        assert r.status_code == 400, r.text  # before: 200, listed as a custom model
        err = r.json()["error"]
        assert err["param"] == "models"
        assert "models[1].id" in err["message"] and repr(imitated) in err["message"]
        assert h.table.get("spoof") is None
        listed = (await h.client.get("/v1/models")).json()["data"]
        assert model_id not in {m["id"] for m in listed}
    reopened = SqlStore(database_url)
    await reopened.open()
    try:
        assert [n.node_id for n in await reopened.list_nodes()] == ["honest"]
    finally:
        await reopened.close()


async def test_a_mixed_script_model_id_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        h.nodes.add("spoof")
        reg = registration("spoof", ["my-\u043erg/llama-3-8b"])  # Cyrillic о in a custom id
        r = await h.client.post("/mesh/nodes", json=reg)
        assert r.status_code == 400, r.text
        assert "mixes scripts (Cyrillic, Latin)" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "model_id",
    ["my-org/llama-3-8b-instruct", "qwen2.5-coder:7b", "gemma-3-270m-it", "llama3:8b",
     "\u043c\u043e\u0434\u0435\u043b\u044c-1", "gemma-3-270m"],
)  # fmt: skip
async def test_ordinary_model_ids_still_register(tmp_path: Path, model_id: str) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a", [model_id])
        assert h.table.get("node-a") is not None
        listed = (await h.client.get("/v1/models")).json()["data"]
        assert model_id in {m["id"] for m in listed}


async def test_a_stored_lookalike_from_an_older_replica_is_not_loaded(tmp_path: Path) -> None:
    """A node row written before the check (or by a replica without it) is skipped."""
    async with running(tmp_path) as h:
        now = datetime.now(timezone.utc)
        record = NodeRecord(
            node_id="spoof", url="http://spoof:8801", region=None,
            models=[{"id": "g\u0435mma-3-270m", "engine": "sim"}], hardware={},
            max_concurrency=1, max_queue=1, version="0", state="online",
            registered_at=now, last_heartbeat_at=now,
        )  # fmt: skip
        lab = NodeTransport(allow_plain_http=True)  # its URL is not why: the model id is
        assert entry_from_record(h.table, record, heard_now=True, transport=lab) is None
        assert h.table.get("spoof") is None


async def test_a_node_lists_at_most_the_bound_of_models(tmp_path: Path) -> None:
    """``MAX_MODELS_PER_NODE`` models register; one more is a 400 naming ``models`` (before:
    any number, each id checked by ``core/confusable.py``)."""
    async with running(tmp_path) as h:
        ids = [f"my-org/model-{i}" for i in range(MAX_MODELS_PER_NODE + 1)]
        h.nodes.add("big")
        r = await h.client.post("/mesh/nodes", json=registration("big", ids))
        assert r.status_code == 400, r.text  # before: 200
        err = r.json()["error"]
        assert err["param"] == "models" and f"at most {MAX_MODELS_PER_NODE}" in err["message"]
        assert h.table.get("big") is None
        await h.register("big", ids[:MAX_MODELS_PER_NODE])
        assert h.table.get("big") is not None


async def test_an_unauthenticated_registration_cannot_make_the_registry_check_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration is parsed before its operator token is looked up: anyone with a
    self-made key could send 1 MiB of model ids (74,560 short unique ones, or 3,941 of 256
    characters) and cost the registry's event loop 2-3 s of confusable checks each (found
    2026-12-02, measured on the shared 2-core box). The count is refused before any id is
    checked."""
    checked: list[str] = []

    def counting(model_id: str) -> None:
        checked.append(model_id)
        return None

    monkeypatch.setattr(schemas, "lookalike_problem", counting)
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, None)  # a self-made key, no operator token
        ids = [format(i, "x") for i in range(20_000)]
        body = json.dumps(registration(node.node_id, ids)).encode()
        assert len(body) < h.settings.max_mesh_body_bytes
        r = await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
        assert r.status_code == 400, r.text  # before: 401 after 20,000 ids were checked
        assert r.json()["error"]["param"] == "models"
        assert checked == []


async def test_an_unauthenticated_registration_is_not_parsed_past_its_container_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 MiB of 74,000 model objects cost the parser ~100-180 ms before the count of models
    refused them (found 2026-12-02, measured on the shared 2-core box): its arrays and
    objects are counted on the bytes first, and the parser never runs."""
    parsed: list[bytes] = []
    real = NodeRegistration.model_validate_json

    def counting(body: bytes, *a: Any, **kw: Any) -> NodeRegistration:
        parsed.append(body)
        return real(body, *a, **kw)

    monkeypatch.setattr(NodeRegistration, "model_validate_json", counting)
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, None)
        reg = registration(node.node_id)
        reg["models"] = [{"id": format(i, "x")} for i in range(74_000)]
        body = json.dumps(reg, separators=(",", ":")).encode()
        assert len(body) < h.settings.max_mesh_body_bytes
        r = await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "models"
        assert parsed == []  # before: parsed whole
        # a registration at the bound, with hardware and GPUs, is not refused by it
        reg["models"] = [{"id": f"m{i}", "engine": "sim"} for i in range(MAX_MODELS_PER_NODE)]
        reg["hardware"] = {"gpus": [{"name": "x", "memory": [1, 2]} for _ in range(8)]}
        body = json.dumps(reg).encode()
        r = await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
        assert r.status_code == 401, r.text  # parsed, then refused: no operator token
        assert len(parsed) == 1
