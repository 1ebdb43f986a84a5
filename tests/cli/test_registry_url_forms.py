"""A registry URL as a new user writes it (found 2026-12-05, newuser32):

- the gateway's OpenAI base URL, which ``llm-mesh up`` prints first (``Gateway (OpenAI
  API): http://127.0.0.1:8800/v1``) and the OpenAI SDK takes: ``--registry
  http://127.0.0.1:8800/v1`` or ``LLM_MESH_REGISTRY_URL=.../v1`` made every command ask
  ``/v1/mesh/models`` and fail with ``Not Found``; it names the same registry, and is
  taken as it;
- no scheme, ``--registry 127.0.0.1:8800``: httpx's ``UnsupportedProtocol: Request URL is
  missing an 'http://' or 'https://' protocol`` after the command tried; now one
  ``error:`` line naming the setting and the URL to write, before anything is sent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings

runner = CliRunner()


@pytest.mark.parametrize(
    ("given", "urls"),
    [
        ("http://127.0.0.1:8800/v1", ("http://127.0.0.1:8800",)),
        ("http://127.0.0.1:8800/v1/", ("http://127.0.0.1:8800",)),
        ("https://mesh.example.org/v1,https://b.example.org", ("https://mesh.example.org", "https://b.example.org")),
        ("https://mesh.example.org/prefix", ("https://mesh.example.org/prefix",)),
        ("HTTP://127.0.0.1:8800", ("HTTP://127.0.0.1:8800",)),
    ],
)  # fmt: skip
def test_the_openai_base_url_names_its_registry(given: str, urls: tuple[str, ...]) -> None:
    assert Settings.from_env({"LLM_MESH_REGISTRY_URL": given}).registry_urls == urls
    assert Settings.from_env({}, registry_url=given).registry_urls == urls
    assert Settings.from_env({}, registry_url=given).registry_url == urls[0]


@pytest.mark.parametrize("given", ["127.0.0.1:8800", "localhost:8800", "mesh.example.org"])
def test_a_url_without_its_scheme_is_one_error_line(given: str) -> None:
    for args, env in (
        (["status", "--registry", given], {}),
        (["ask", "hi", "--registry", given], {}),
        (["status"], {"LLM_MESH_REGISTRY_URL": given}),
    ):
        out = runner.invoke(app, args, env={**env, "COLUMNS": "300"})
        said = " ".join(out.output.split())
        assert out.exit_code == 1 and isinstance(out.exception, SystemExit), said
        assert said.startswith("error: "), said
        assert f"http://{given}" in said and "Traceback" not in said, said
        assert "UnsupportedProtocol" not in said, said
        named = "LLM_MESH_REGISTRY_URL" if env else "--registry"
        assert named in said, said
