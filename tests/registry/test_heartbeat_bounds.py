"""A heartbeat's ``loaded_models`` holds at most what a registration may list: 256 ids of
256 characters, and the heartbeat ``MAX_HEARTBEAT_BYTES`` (found 2026-12-05: 1 MiB of them
was parsed and put in the table, ~8 ms of the registry's loop each time). Both routes:
the hot one and FastAPI's. docs/security.md, "Registration and heartbeats"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from LLM_Mesh.core.schemas import MAX_HEARTBEAT_BYTES, MAX_MODEL_ID_CHARS, MAX_MODELS_PER_NODE
from LLM_Mesh.registry.node_table import loaded_models
from tests.registry.helpers import Harness, registration, running

HB = "/mesh/nodes/node-a/heartbeat"


def _hot(h: Harness, on: bool) -> None:
    h.app.hot_heartbeat = on  # type: ignore[attr-defined]


@pytest.mark.parametrize("hot", [True, False])
async def test_a_heartbeat_past_a_registrations_models_is_refused(
    tmp_path: Path, hot: bool
) -> None:
    async with running(tmp_path) as h:
        _hot(h, hot)
        assert (await h.client.post("/mesh/nodes", json=registration("node-a"))).status_code == 200
        before = loaded_models(h.runtime.table.get("node-a"))  # type: ignore[arg-type]
        cases = {
            "bytes": ["gemma-3-270m"] * 65_000,  # <1 MiB: before, 200 and in the table
            "count": [f"m{i}" for i in range(MAX_MODELS_PER_NODE + 1)],
            "chars": ["x" * (MAX_MODEL_ID_CHARS + 1)],
        }
        for case, models in cases.items():
            r = await h.client.post(HB, json={"loaded_models": models})
            assert r.status_code == 400, (case, r.text)
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error", case
            assert "loaded_models" in (err["param"] or "") + err["message"], (case, err)
            limit = {"bytes": MAX_HEARTBEAT_BYTES, "count": MAX_MODELS_PER_NODE,
                     "chars": MAX_MODEL_ID_CHARS}[case]  # fmt: skip
            assert str(limit) in err["message"], (case, err)
            assert loaded_models(h.runtime.table.get("node-a")) == before  # type: ignore[arg-type]
        # the most a registration may declare still passes: 256 ids of 256 4-byte characters
        widest = [f"{i:03d}" + "\U0001d538" * (MAX_MODEL_ID_CHARS - 3)
                  for i in range(MAX_MODELS_PER_NODE)]  # fmt: skip
        body = json.dumps({"in_flight": 1, "loaded_models": widest}, ensure_ascii=False)
        assert len(body.encode()) <= MAX_HEARTBEAT_BYTES
        r = await h.client.post(
            HB, content=body.encode(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, r.text
