"""The fields of a client's request the gateway never forwards (``core/withheld.py``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.withheld import WITHHELD_FIELDS, has_withheld

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


@pytest.mark.parametrize("field", WITHHELD_FIELDS)
def test_each_field_that_names_or_tags_the_client_is_withheld(field: str) -> None:
    assert has_withheld({**BODY, field: "x"})
    assert has_withheld({field: None})  # present at all, whatever its value


@pytest.mark.parametrize(
    "body",
    [{}, BODY, {**BODY, "service_tier": "auto", "prompt_cache_retention": "24h"},
     {"messages": [{"role": "user", "content": "hi", "user": "x"}]}],
)  # fmt: skip
def test_a_body_without_them_has_nothing_withheld(body: dict[str, object]) -> None:
    assert not has_withheld(body)


def test_the_withheld_fields_are_the_five_that_identify_a_client() -> None:
    """(``web_search_options``, with the user's location, is refused since 2026-12-05:
    ``core/unsupported.py``; ``tests/registry/test_openai_sdk_audit.py``.)"""
    assert set(WITHHELD_FIELDS) == {
        "user", "safety_identifier", "prompt_cache_key", "metadata", "store",
    }  # fmt: skip
