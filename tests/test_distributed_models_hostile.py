"""The seed's model registry facing a gateway that is not the user's own mesh.

Found 2026-12-03: ``health_check_all_hosts()`` sent ``$LLM_MESH_HOME/admin.key`` (the key a
local ``llm-mesh up`` made) to whatever ``LLM_MESH_REGISTRY_URL`` named; and
``ModelResponse.from_openai`` called ``int()`` on a hostile gateway's ``usage`` values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.distributed_models import DistributedModelRegistry, ModelResponse, main
from LLM_Mesh.errors import InvalidCredential
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE
from tests.hostile_gateway import serve
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

LOCAL_KEY = "local-mesh-admin-key-0123456789"
EVIL = "https://gateway.evil.example"


def local_home(tmp_path: Path) -> Path:
    """A home after ``llm-mesh up`` on the default port: its admin key and its registry."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.key").write_text(LOCAL_KEY + "\n")
    (home / ADMIN_KEY_REGISTRY_FILE).write_text("http://127.0.0.1:8800\n")
    return home


def hostile(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/mesh/health-check":
            return httpx.Response(200, json={"results": []})
        if request.url.path == "/mesh/models":
            return httpx.Response(200, json={"models": []})
        return httpx.Response(200, json={"nodes": []})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    "url", [EVIL, "http://127.0.0.1:9000", "http://127.0.0.1:8800@evil.example"]
)
async def test_the_local_admin_key_file_never_goes_to_another_registry(
    tmp_path: Path, url: str
) -> None:
    seen: list[httpx.Request] = []
    reg = DistributedModelRegistry(
        Settings(home=local_home(tmp_path)), registry_url=url, http_client=hostile(seen)
    )
    with pytest.raises(InvalidCredential, match="LLM_MESH_ADMIN_KEY") as exc:
        await reg.health_check_all_hosts()
    assert LOCAL_KEY not in str(exc.value)
    assert seen == []  # refused before anything was sent


async def test_a_refusal_names_the_registry_the_home_key_is_for(tmp_path: Path) -> None:
    """Found 2026-12-07 (newuser44): the seed's ``health_check_all_hosts()`` in the home of a
    mesh on another port than the URL configured said only to set LLM_MESH_ADMIN_KEY."""
    seen: list[httpx.Request] = []
    reg = DistributedModelRegistry(
        Settings(home=local_home(tmp_path)), registry_url="http://127.0.0.1:9000",
        http_client=hostile(seen),
    )  # fmt: skip
    with pytest.raises(InvalidCredential) as exc:
        await reg.health_check_all_hosts()
    said = str(exc.value)
    assert "this home's admin.key is for the registry at http://127.0.0.1:8800" in said, said
    assert "not http://127.0.0.1:9000" in said and "registry_url=" in said
    assert LOCAL_KEY not in said and seen == []
    (tmp_path / "home" / "admin.key").unlink()  # no key in the home: nothing to name
    with pytest.raises(InvalidCredential) as exc:
        await reg.health_check_all_hosts()
    assert "this home's" not in str(exc.value) and "LLM_MESH_ADMIN_KEY" in str(exc.value)


async def test_the_admin_key_file_waits_for_its_registrys_proof(tmp_path: Path) -> None:
    """A recorded URL gets the key only once it proved it holds the registry's key
    (``tests/test_admin_proof.py``): this server does not."""
    home = local_home(tmp_path)
    (home / ADMIN_KEY_REGISTRY_FILE).write_text("http://127.0.0.1:8800\nkey=" + "A" * 43 + "\n")
    seen: list[httpx.Request] = []
    reg = DistributedModelRegistry(
        Settings(home=home), registry_url="http://127.0.0.1:8800/", http_client=hostile(seen)
    )
    with pytest.raises(InvalidCredential, match="did not prove"):
        await reg.health_check_all_hosts()
    assert [r.url.path for r in seen] == ["/mesh/identity"]
    assert "authorization" not in seen[0].headers


async def test_an_explicit_admin_key_goes_to_the_configured_registry(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    settings = Settings(home=local_home(tmp_path), admin_key="explicit-admin-key")
    reg = DistributedModelRegistry(settings, registry_url=EVIL, http_client=hostile(seen))
    await reg.health_check_all_hosts()
    assert seen[0].headers["authorization"] == "Bearer explicit-admin-key"


async def test_no_record_beside_the_key_sends_it_nowhere(tmp_path: Path) -> None:
    home = local_home(tmp_path)
    (home / ADMIN_KEY_REGISTRY_FILE).unlink()  # a key made before registries recorded it
    seen: list[httpx.Request] = []
    reg = DistributedModelRegistry(
        Settings(home=home), registry_url="http://127.0.0.1:8800", http_client=hostile(seen)
    )
    with pytest.raises(InvalidCredential, match="LLM_MESH_ADMIN_KEY"):
        await reg.health_check_all_hosts()
    assert seen == []


async def test_the_registry_records_its_urls_beside_the_key(
    inprocess_mesh: InProcessMesh,
) -> None:
    home = inprocess_mesh.settings.home
    assert (home / "admin.key").exists()
    recorded = (home / ADMIN_KEY_REGISTRY_FILE).read_text().split()
    assert recorded[0] == REGISTRY_URL and recorded[1].startswith("key=")  # its key beside


# --- a hostile gateway's usage ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["12", "many", 1.5, float("inf"), float("nan"), True, None, [], {}, -3, 2**53 + 1, 2**64],
)
def test_hostile_usage_counts_read_as_zero(value: Any) -> None:
    body = {
        "choices": [{"text": "hi"}],
        "usage": {"prompt_tokens": value, "completion_tokens": value},
    }
    res = ModelResponse.from_openai(body, task_type=None, requested="m")
    assert (res.text, res.prompt_tokens, res.completion_tokens) == ("hi", 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"choices": "x", "usage": "x", "mesh": "x"},
        {"choices": ["x"], "usage": [1], "mesh": [1]},
        {"choices": [{"message": "x"}], "usage": 7},
    ],
)
def test_hostile_answer_shapes_are_read_as_empty(body: dict[str, Any]) -> None:
    res = ModelResponse.from_openai(body, task_type=None, requested="m")
    assert (res.text, res.model, res.prompt_tokens, res.cost) == ("", "m", 0, 0)


def test_honest_usage_is_read() -> None:
    body = {"choices": [{"text": "ok"}], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}
    res = ModelResponse.from_openai(body, task_type=None, requested="m")
    assert (res.prompt_tokens, res.completion_tokens) == (4, 9)


@pytest.fixture
def evil_gateway() -> Iterator[str]:
    yield from serve()


def test_the_status_commands_error_reaches_the_terminal_without_escapes(
    evil_gateway: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 2026-12-05: ``python -m LLM_Mesh.distributed_models`` (``llm-mesh status``'s
    twin) printed a gateway's error answer to stderr as sent: its ESC sequences cleared
    the user's terminal and set its title (``llm-mesh`` prints the same error as text)."""
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", f"{evil_gateway}/evil")
    monkeypatch.setenv("LLM_MESH_HOME", "/nonexistent-h29")
    assert main([]) == 1
    said = capsys.readouterr().err
    assert said.startswith("LLM Mesh: ") and "OK[/link]" in said, repr(said)  # its words
    assert not any(c in said for c in "\x1b\x07\x9b"), repr(said)
