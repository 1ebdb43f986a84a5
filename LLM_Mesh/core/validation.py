"""Request checks that need the catalog (the schema checks live in ``schemas``).

The gateway has no tokenizer, so it estimates a prompt's length from its
characters with a *lenient* bound (6 characters a token: real tokenizers give
3–5 for English and code) and refuses only prompts that surely exceed the
model's context. The node checks exactly with the model's own tokenizer.
"""

from __future__ import annotations

import math

from LLM_Mesh.errors import ContextLengthExceeded


def ascii_digits(text: str) -> bool:
    """``text`` is only ``0``-``9``: ``str.isdigit()`` also takes ``²`` (a latin-1 header
    byte), which ``int()`` refuses, and ``٣``, which ``int()`` reads as 3; a number a peer
    or an operator writes is read only in ASCII digits."""
    return text.isascii() and text.isdigit()


CHARS_PER_TOKEN_LENIENT = 6


def estimate_min_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN_LENIENT)


def check_context(prompt_text: str, max_tokens: int, context_length: int, model: str) -> None:
    """Raise ContextLengthExceeded when prompt + max_tokens surely exceed the context."""
    if max_tokens > context_length:
        raise ContextLengthExceeded(
            f"max_tokens={max_tokens} exceeds {model}'s context length of {context_length} tokens",
            param="max_tokens",
        )
    est = estimate_min_tokens(prompt_text)
    if est + max_tokens > context_length:
        raise ContextLengthExceeded(
            f"the prompt (at least ~{est} tokens) plus max_tokens={max_tokens} exceeds "
            f"{model}'s context length of {context_length} tokens",
            param="messages",
        )
