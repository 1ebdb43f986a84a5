"""registry/errors.py: the gateway's JSON answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from LLM_Mesh.errors import StoreUnavailable, UpstreamError
from LLM_Mesh.registry.errors import error_response, json_response
from tests.registry.helpers import running


def test_json_response_is_compact_json() -> None:
    assert json_response({"a": [1, 2.5], "é": None}).body == '{"a":[1,2.5],"é":null}'.encode()


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_json_response_never_writes_nan_or_infinity(value: float) -> None:
    with pytest.raises(ValueError):  # before: Infinity / NaN, which is not JSON
        json_response({"cost": value})


async def test_every_error_answer_says_whether_a_retry_can_help(tmp_path: Path) -> None:
    """``x-should-retry`` (core/client_retry.py) on the error handler's answers: a route
    that is not there and a wrong method (the client's), the database busy (a retry
    helps at once); a node's failure with no estimate of another node, no retry."""
    async with running(tmp_path) as h:
        assert (await h.client.get("/v1/nothing")).headers["x-should-retry"] == "false"
        assert (await h.client.delete("/v1/models")).headers["x-should-retry"] == "false"
        busy = error_response(StoreUnavailable("busy"))
        assert (busy.status_code, busy.headers["x-should-retry"]) == (503, "true")
        failed = error_response(UpstreamError("node failed")).headers
        assert failed["x-should-retry"] == "false" and "retry-after" not in failed
        soon = error_response(UpstreamError("node failed", retry_after=1)).headers
        assert (soon["x-should-retry"], soon["retry-after"]) == ("true", "1")


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/v1/completions", "max_tokens", {"prompt": "x"}),
        ("/v1/chat/completions", "max_completion_tokens", {"messages": [{"role": "user",
                                                                          "content": "x"}]}),
    ],
)  # fmt: skip
async def test_max_tokens_over_the_mesh_limit_is_said_as_such(
    tmp_path: Path, path: str, field: str, body: dict[str, object]
) -> None:
    """Found 2026-12-06 (newuser33): ``llm-mesh ask --max-tokens 40000`` said ``--max-tokens
    40000: Input should be less than or equal to 32768`` (pydantic's words; README: a
    --max-tokens over the model's context is said as ``--max-tokens N exceeds ...``)."""
    async with running(tmp_path) as h:
        r = await h.client.post(path, json={"model": "gemma-3-270m", field: 40000, **body})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == field
        assert err["message"] == (
            f"{field}=40000 exceeds 32768, the most tokens one request may ask for"
        ), err
