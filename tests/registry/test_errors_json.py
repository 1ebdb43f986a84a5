"""registry/errors.py's ``json_response`` without headers (the whole answers' path): the
``Response`` it fills in itself is the one Starlette's ``__init__`` made (perf45)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.responses import Response

from LLM_Mesh.core import strict_json
from LLM_Mesh.registry.errors import NOSNIFF, json_response

BODY = {"id": "chatcmpl-1", "choices": [{"message": {"content": "héllo"}}], "n": 2.5}


def _starlettes(body: Any, status: int) -> Response:
    """What ``json_response`` made before perf45: Starlette's own construction."""
    made = Response(strict_json.dumps(body), status_code=status, media_type="application/json")
    made.raw_headers.append(NOSNIFF)
    return made


@pytest.mark.parametrize("status", [200, 201, 400, 404, 429, 500, 502, 503, 101, 204, 304])
def test_it_is_starlettes_response(status: int) -> None:
    ours, theirs = json_response(BODY, status), _starlettes(BODY, status)
    assert type(ours) is Response
    assert vars(ours) == vars(theirs)  # status, media type, background, body, raw headers


def test_no_content_length_where_starlette_leaves_it_out() -> None:
    for status in (101, 204, 304):
        assert b"content-length" not in dict(json_response({}, status).raw_headers)
    assert dict(json_response({}, 200).raw_headers)[b"content-length"] == b"2"


def test_each_answer_has_its_own_header_list() -> None:
    """``relay.json_answer`` puts its headers in front of the list: never into another's."""
    a, b = json_response({"a": 1}), json_response({"b": 2})
    a.raw_headers[:0] = [(b"x-mesh-node", b"n1")]
    assert b.raw_headers == _starlettes({"b": 2}, 200).raw_headers


def test_with_headers_it_is_starlettes_too() -> None:
    ours = json_response(BODY, 429, {"Retry-After": "3"})
    theirs = Response(
        strict_json.dumps(BODY), status_code=429, headers={"Retry-After": "3"},
        media_type="application/json",
    )  # fmt: skip
    theirs.raw_headers.append(NOSNIFF)
    assert vars(ours) == vars(theirs)
