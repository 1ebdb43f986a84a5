"""registry/errors.py: the gateway's JSON answers."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.registry.errors import json_response


def test_json_response_is_compact_json() -> None:
    assert json_response({"a": [1, 2.5], "é": None}).body == '{"a":[1,2.5],"é":null}'.encode()


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_json_response_never_writes_nan_or_infinity(value: float) -> None:
    with pytest.raises(ValueError):  # before: Infinity / NaN, which is not JSON
        json_response({"cost": value})
