"""Every error answer of the gateway's /v1 API carries a request id (found 2026-12-05: a
refusal before parsing (bad JSON, unknown model, unsupported field, a field out of range,
a body too large, an unknown route) had no ``X-Request-Id``: the openai SDK's
``request_id`` of the error was ``None``, and nothing tied the answer to its log line)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from LLM_Mesh.logs import REQUEST_ATTR
from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client

HI = [{"role": "user", "content": "hi"}]
MODEL = "gemma-3-270m"


def _has_id(response: httpx.Response) -> str:
    rid = response.headers.get("x-request-id")
    assert rid and rid.startswith("req-") and len(rid) == 36, dict(response.headers)
    assert response.headers["x-mesh-request-id"] == rid
    return rid


SDK_REFUSALS: list[tuple[str, type[openai.APIStatusError], dict[str, Any]]] = [
    ("unknown_model", openai.NotFoundError, {"model": "no-such-model"}),
    ("unsupported", openai.BadRequestError, {"tools": [{"type": "function",
                                                        "function": {"name": "f"}}]}),
    ("penalty_range", openai.BadRequestError, {"presence_penalty": 3}),
    ("bad_field", openai.BadRequestError, {"temperature": 9}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "error", "extra"), SDK_REFUSALS, ids=[k for k, *_ in SDK_REFUSALS]
)
async def test_a_parse_refusal_has_the_sdks_request_id_and_the_log_line_has_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str,
    error: type[openai.APIStatusError], extra: dict[str, Any],
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with sdk_client(h) as client:
            body: dict[str, Any] = {"model": MODEL, "messages": HI, **extra}
            with pytest.raises(error) as refused:
                await client.chat.completions.create(**body)
    rid = _has_id(refused.value.response)
    assert refused.value.request_id == rid
    logged = [getattr(r, REQUEST_ATTR) for r in caplog.records if hasattr(r, REQUEST_ATTR)]
    assert [f["request_id"] for f in logged] == [rid]


async def test_refusals_before_any_parse_have_one(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        c = h.client
        headers = {"content-type": "application/json"}
        big = b" " * (h.settings.limits.max_body_bytes + 1)
        answers = {
            "bad json": await c.post("/v1/chat/completions", content=b"{nope", headers=headers),
            "not an object": await c.post("/v1/completions", content=b"[1]", headers=headers),
            "empty": await c.post("/v1/completions", content=b"", headers=headers),
            "too large": await c.post("/v1/chat/completions", content=big, headers=headers),
            "no such route": await c.post("/v1/embeddings", json={"model": MODEL}),
            "wrong method": await c.get("/v1/chat/completions"),
            "no such model": await c.get("/v1/models/no-such-model"),
        }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "bad json": 400,
        "not an object": 400,
        "empty": 400,
        "too large": 413,
        "no such route": 404,
        "wrong method": 405,
        "no such model": 404,
    }
    ids = {name: _has_id(r) for name, r in answers.items()}
    assert len(set(ids.values())) == len(ids)  # each its own


async def test_the_clients_own_id_names_its_refusal(tmp_path: Path) -> None:
    """As for an answer: the client's ``X-Request-Id`` is the refusal's."""
    async with running(tmp_path) as h:
        r = await h.client.post("/v1/chat/completions", json={"model": "nope", "messages": HI},
                                headers={"X-Request-Id": "my-call-7"})  # fmt: skip
    assert r.status_code == 404 and r.headers["x-request-id"] == "my-call-7"
