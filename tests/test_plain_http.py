"""The Python API's warning when it sends a credential over plain http to another machine
(``LLM_Mesh/plain_http.py``): ``MeshClient``, ``distributed_models`` and ``mesh_manager``
sent the API key to ``http://`` on another host without a word, where the CLI warns
(found 2026-12-05). One WARNING per client, logged (never printed); https and loopback
registries are not warned about."""

from __future__ import annotations

import logging

import httpx
import pytest

from LLM_Mesh.client import MeshClient
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.mesh_manager import MeshManager

FAR = "http://h29.invalid:8800"
WORDS = "the API key goes over plain http to http://h29.invalid:8800"
ANSWER = {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}], "model": "m"}


def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, json=ANSWER))
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "LLM_Mesh.client"
    ]


async def test_a_client_warns_once_when_its_api_key_goes_over_plain_http(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING, "LLM_Mesh.client")
    async with _http() as http:
        for _ in range(2):  # two clients: one warning each, whatever each sends
            async with MeshClient(FAR, api_key="sk-h29", http_client=http) as c:
                await c.completion({"model": "m", "prompt": "x"})
                await c.chat({"model": "m", "messages": []})
    said = _warnings(caplog)
    assert len(said) == 2 and all(WORDS in s for s in said), said
    assert "sk-h29" not in " ".join(said)
    assert capsys.readouterr() == ("", "")  # logged, never printed


@pytest.mark.parametrize(
    "url",
    ["https://h29.invalid", "http://127.0.0.1:8800", "http://localhost:8800", "http://[::1]:1"],
)
async def test_https_and_loopback_are_not_warned_about(
    caplog: pytest.LogCaptureFixture, url: str
) -> None:
    caplog.set_level(logging.WARNING, "LLM_Mesh.client")
    async with _http() as http, MeshClient(url, api_key="sk-h29", http_client=http) as c:
        await c.completion({"model": "m", "prompt": "x"})
    assert _warnings(caplog) == []


async def test_no_credential_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "LLM_Mesh.client")
    async with _http() as http, MeshClient(FAR, http_client=http) as c:
        await c.completion({"model": "m", "prompt": "x"})
    assert _warnings(caplog) == []


async def test_the_seed_api_warns_once_per_registry_object(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``distributed_models`` makes a client per call: the warning is the registry
    object's, once, and ``mesh_manager`` (on top of it) says no more."""
    caplog.set_level(logging.WARNING, "LLM_Mesh.client")
    async with _http() as http:
        reg = DistributedModelRegistry(registry_url=FAR, api_key="sk-h29", http_client=http)
        for _ in range(3):
            await reg.get_response("m", "x")
        await MeshManager(reg).handle_task("python", {"prompt": "x"}, model="m")
        quiet = DistributedModelRegistry(
            registry_url=FAR, api_key="sk-h29", http_client=http, warn_plain_http=False
        )  # the CLI's: it says so on stderr itself
        await quiet.get_response("m", "x")
    said = _warnings(caplog)
    assert len(said) == 1 and WORDS in said[0], said
