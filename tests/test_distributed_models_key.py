"""A wrong or revoked API key, as the seed API's caller is told it (found 2026-12-07,
words43 after newuser43): the gateway's 401 tells an HTTP client to "send no Authorization
header", which ``get_model_response`` and ``handle_task`` send themselves; their caller is
told what it controls (``LLM_MESH_API_KEY``, ``DistributedModelRegistry(api_key=)``), and
``llm-mesh ask`` its flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from LLM_Mesh.cli.demo import ask_once
from LLM_Mesh.core.client_retry import CLI_NO_KEY_HINT, NO_KEY_HINT, SEED_NO_KEY_HINT
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import InvalidApiKey
from LLM_Mesh.mesh_manager import MeshManager
from tests.registry.helpers import running

MODEL = "gemma-3-270m"
WRONG = "lmk_" + "x" * 43  # the mesh's key format, a key it never made


async def test_the_gateway_tells_an_http_client_of_its_header(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "x"},
            headers={"Authorization": f"Bearer {WRONG}"},
        )
    assert r.status_code == 401
    assert r.json()["error"]["message"].endswith(NO_KEY_HINT)  # its own words, kept


@pytest.mark.parametrize("chat", [False, True])
async def test_the_seed_api_is_told_what_it_sets(tmp_path: Path, chat: bool) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        seed = DistributedModelRegistry(
            registry_url="http://mesh", http_client=h.client, api_key=WRONG
        )
        with pytest.raises(InvalidApiKey) as got:
            await seed.get_response(MODEL, "x", chat=chat)
        said = got.value.message
        assert said.startswith("incorrect API key provided") and said.endswith(SEED_NO_KEY_HINT)
        assert "Authorization" not in said and "LLM_MESH_API_KEY" in said, said
        with pytest.raises(InvalidApiKey) as task:
            await MeshManager(seed).handle_task_async("python", {"prompt": "x"}, model=MODEL)
        assert task.value.message.endswith(SEED_NO_KEY_HINT), task.value.message


async def test_ask_is_told_its_flag(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        with pytest.raises(InvalidApiKey) as got:
            await ask_once(
                Console(file=None, quiet=True), "http://mesh", "x", model=MODEL, task=None,
                stream=False, chat=False, max_tokens=16, temperature=None, fallback=False,
                http_client=h.client, api_key=WRONG,
            )  # fmt: skip
    assert got.value.message.endswith(CLI_NO_KEY_HINT), got.value.message
