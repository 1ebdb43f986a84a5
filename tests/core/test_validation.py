"""Catalog-aware request checks (core/validation.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.validation import CHARS_PER_TOKEN_LENIENT, check_context, estimate_min_tokens
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
    assert "gemma-3-270m" in exc.message
    assert "1024" in exc.message


def test_max_tokens_alone_over_context() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        check_context("", max_tokens=4097, context_length=4096, model="llama-2-70b-chat")
    assert info.value.param == "max_tokens"
    assert "4097" in info.value.message


def test_max_tokens_equal_context_with_empty_prompt_ok() -> None:
    check_context("", max_tokens=4096, context_length=4096, model="m")
