"""``llm-mesh ask`` refuses, unsent, a request whose JSON is over ``LLM_MESH_MAX_BODY_BYTES``
(the gateway's body limit), saying how large it is and the limit.

Found 2026-12-06 (cli37): ``ask`` read its prompt to that bound, then sent it whatever its
JSON came to: a prompt of quotes or line ends under the bound (each 2 bytes as JSON, a
control character 6) went to the gateway and came back 413. Failed before: the request
reached the gateway. A stdlib http server records each request and answers 404 (or a real
gateway's 413)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.core.limits import sent_size
from tests.cli.registry_404 import serve_http

runner = CliRunner()


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
    with serve_http() as (url, _, seen):
        yield url, seen


def _ask(url: str, prompt: str, limit: int, *flags: str) -> tuple[int, str]:
    env = {"COLUMNS": "300", "LLM_MESH_MAX_BODY_BYTES": str(limit), "LLM_MESH_API_KEY": "",
           "LLM_MESH_REGISTRY_CA": ""}  # fmt: skip
    args = ["ask", "-", "--model", "mistral-7b", "--registry", url, *flags]
    out = runner.invoke(app, args, input=prompt, env=env)
    return out.exit_code, " ".join(out.output.split())


WAYS = {"completion": [], "chat": ["--chat"], "stream": ["--stream"],
        "stream-chat": ["--stream", "--chat"]}  # fmt: skip


@pytest.mark.parametrize("flags", WAYS.values(), ids=WAYS.keys())
def test_a_prompt_under_the_limit_whose_json_is_over_it_is_not_sent(
    gateway: tuple[str, list[tuple[str, str, int]]], flags: list[str]
) -> None:
    url, seen = gateway
    code, said = _ask(url, '"' * 600, 1024, *flags)  # 600 bytes read, 1,200 as JSON
    assert code == 1 and seen == [], said  # nothing sent (failed before: the POST)
    assert "over the gateway's limit of 1,024 bytes (LLM_MESH_MAX_BODY_BYTES): not sent" in said
    assert "The prompt is 600 bytes, 1,200 as JSON" in said, said
    assert '"' * 20 not in said  # (a completion's stream echoes the prompt: not before it)


@pytest.mark.parametrize("flags", WAYS.values(), ids=WAYS.keys())
def test_the_size_checked_is_the_size_sent(
    gateway: tuple[str, list[tuple[str, str, int]]], flags: list[str]
) -> None:
    """At the limit the request goes; one byte under it, it does not (and the size said is
    what the gateway would have received)."""
    url, seen = gateway
    prompt = 'é "quoted" \\ back\tslash \x01 ünïcode 日本'
    _ask(url, prompt, 1 << 20, *flags)
    [(_, _, size)] = [s for s in seen if s[0] == "POST"]
    seen.clear()
    _ask(url, prompt, size, *flags)
    assert [s[2] for s in seen if s[0] == "POST"] == [size]
    seen.clear()
    code, said = _ask(url, prompt, size - 1, *flags)
    assert code == 1 and seen == [], said
    assert f"the request would be {size:,} bytes as JSON" in said, said


def test_sent_size_is_httpxs_encoding() -> None:
    """``core/limits.sent_size`` counts what httpx sends for ``json=`` (compact, UTF-8,
    non-ASCII as itself): an httpx that encodes otherwise fails here."""
    body = {"model": "m", "prompt": 'é "q" \\ \t \x01 日本 \U0001f600', "stream": False, "n": 1.5}
    assert sent_size(body) == len(httpx.Request("POST", "http://x/", json=body).content)


def _gateways_413(limit: int) -> bytes:
    """What a real gateway's body limit (``BodyLimit``) answers a body over ``limit`` with."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from LLM_Mesh.body_limit import BodyLimit

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    gateway = BodyLimit(Starlette(routes=[Route("/v1/x", echo, methods=["POST"])]), max_bytes=limit)
    answer = TestClient(gateway).post("/v1/x", json={"prompt": "x" * (limit + 1)})
    assert answer.status_code == 413
    return answer.content


@pytest.mark.parametrize("flags", WAYS.values(), ids=WAYS.keys())
def test_a_gateways_413_says_its_limit_and_what_to_set(flags: list[str]) -> None:
    """Found 2026-12-06 (cli38): a gateway whose body limit (1,000 bytes) is below
    ``LLM_MESH_MAX_BODY_BYTES`` here answered 413, and ask said neither its limit nor what to
    set; its 413 says it (``allowed``). Set as said, ask refuses the prompt unsent."""
    with serve_http((413, _gateways_413(1000))) as (url, _, seen):
        code, said = _ask(url, "x" * 990, 1 << 20, *flags)
        assert code == 1 and [s[0] for s in seen] == ["POST"], said
        assert "the gateway refused the request as too large: its limit is 1,000 bytes" in said
        assert "lower than LLM_MESH_MAX_BODY_BYTES here (1,048,576 bytes)" in said, said
        assert "set LLM_MESH_MAX_BODY_BYTES=1000 for this gateway" in said  # (failed before)
        seen.clear()
        code, said = _ask(url, "x" * 990, 1000, *flags)
        assert code == 1 and seen == [], said
        assert "over the gateway's limit of 1,000 bytes (LLM_MESH_MAX_BODY_BYTES)" in said


@pytest.mark.parametrize("allowed", [None, True, "1000", -1, 1.5, 2**60])
def test_a_413_that_does_not_say_its_limit_is_said_in_its_words(allowed: object) -> None:
    """A 413 without a whole-number ``allowed`` (another server, a hostile one) is said as
    before: its own words, and what the body is; no limit made up."""
    error = {"message": "too big for us", "type": "invalid_request_error", "param": None,
             "code": "request_too_large"}  # fmt: skip
    if allowed is not None:
        error["allowed"] = allowed
    with serve_http((413, json.dumps({"error": error}).encode())) as (url, _, _seen):
        code, said = _ask(url, "x" * 2000, 1 << 20)
    assert code == 1
    assert "the gateway refused the request as too large (too big for us)" in said, said
    assert "its limit is" not in said and "shorten the prompt" in said
