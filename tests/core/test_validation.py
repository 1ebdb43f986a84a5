"""Catalog-aware request checks (core/validation.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.stream_guard import MAX_CONTEXT
from LLM_Mesh.core.validation import (
    CHARS_PER_TOKEN_LENIENT,
    ascii_digits,
    check_context,
    context_source,
    estimate_min_tokens,
    served_context,
)
from LLM_Mesh.errors import ContextLengthExceeded, InvalidRequest


def test_estimate_is_lenient_ceiling() -> None:
    assert CHARS_PER_TOKEN_LENIENT == 6
    assert estimate_min_tokens("") == 0
    assert estimate_min_tokens("a") == 1
    assert estimate_min_tokens("a" * 6) == 1
    assert estimate_min_tokens("a" * 7) == 2
    assert estimate_min_tokens("a" * 600) == 100


def test_fits_exactly() -> None:
    check_context("a" * 600, max_tokens=924, context_length=1024, model="m")  # 100 + 924


def test_prompt_plus_max_tokens_over_context() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        check_context("a" * 600, max_tokens=925, context_length=1024, model="gemma-3-270m")
    exc = info.value
    assert isinstance(exc, InvalidRequest)
    assert exc.param == "messages"
    assert exc.status == 400
    assert exc.code == "context_length_exceeded"
    assert exc.message == (
        "the prompt (at least ~100 tokens) plus max_tokens=925 exceeds gemma-3-270m's context "
        "length of 1024 tokens; shorten the prompt or lower max_tokens"
    )  # no source given: nothing said after the figure
    assert exc.to_openai()["error"]["context_length"] == 1024  # for a program to read


def test_max_tokens_alone_over_context() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        check_context("", max_tokens=4097, context_length=4096, model="llama-2-70b-chat")
    assert info.value.param == "max_tokens"
    assert "4097" in info.value.message


def test_max_tokens_equal_context_with_empty_prompt_ok() -> None:
    check_context("", max_tokens=4096, context_length=4096, model="m")


@pytest.mark.parametrize(
    ("declared", "served"),
    [([], 32_768), ([4096], 4096), ([4096, 8192, 2048], 8192), ([4096, None], 32_768),
     ([4096, 0, -5, "9000", 1.5e4], 32_768), ([10**12], 32_768)],
)  # fmt: skip
def test_served_context_is_the_largest_declared_at_most_the_models(
    declared: list[object], served: int
) -> None:
    """A declaration that is not a whole number >= 1 reads as none (the model's own, as the
    stream limit reads it); more than the model has is the model's."""
    assert served_context(declared, 32_768) == served


def test_served_context_is_bounded_by_the_stream_limits_max() -> None:
    assert served_context([10**12], 10**12) == MAX_CONTEXT


def test_a_refusal_says_whose_context_and_what_to_do() -> None:
    assert context_source(32_768, 32_768) == ""  # the model's own: nothing more to say
    source = context_source(4096, 32_768)
    assert source == ", the largest a live node serving it declares now (the model's own: 32768)"
    with pytest.raises(ContextLengthExceeded) as info:
        check_context("", 5000, 4096, "m", source)
    assert info.value.message == (
        f"max_tokens=5000 exceeds m's context length of 4096 tokens{source}; ask for fewer "
        "tokens (the prompt and max_tokens together must fit 4096)"
    )
    assert info.value.to_openai()["error"]["context_length"] == 4096
    narrowed = context_source(32_768, 32_768, constrained=True)
    assert narrowed == (
        ", the largest of the nodes this request may use declares now (the model's own: 32768)"
    )


def test_only_ascii_digits_are_a_number() -> None:
    """``²`` and ``٣`` are digits to ``str.isdigit()``; a number a peer writes is not."""
    assert ascii_digits("0123456789")
    for text in ("²", "٣", "12²", "", "12a", " 1"):
        assert not ascii_digits(text), text
