"""Request checks that need the catalog (the schema checks live in ``schemas``).

The gateway has no tokenizer, so it estimates a prompt's length from its
characters with a *lenient* bound (6 characters a token: real tokenizers give
3–5 for English and code) and refuses only prompts that surely exceed the
model's context. The node checks exactly with the model's own tokenizer.

Which context: the one the mesh *serves* the model with now (:func:`served_context`): the
largest a live node serving it declares, at most the model's own (the catalog's), the
model's own when no live node declares one. A refusal says that figure, whose it is, and
what to do (found 2026-12-06, context34: ``node info`` said 4096, ``models`` 32768).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from LLM_Mesh.core.stream_guard import node_context
from LLM_Mesh.errors import ContextLengthExceeded


def ascii_digits(text: str) -> bool:
    """``text`` is only ``0``-``9``: ``str.isdigit()`` also takes ``²`` (a latin-1 header
    byte), which ``int()`` refuses, and ``٣``, which ``int()`` reads as 3; a number a peer
    or an operator writes is read only in ASCII digits."""
    return text.isascii() and text.isdigit()


CHARS_PER_TOKEN_LENIENT = 6


def estimate_min_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN_LENIENT)


def served_context(declared: Iterable[object], model_context: int) -> int:
    """The context a model is served with now: the largest of ``declared`` (each live
    node's declaration, as the stream limit reads it: none declared is ``model_context``;
    at most ``stream_guard.MAX_CONTEXT``), at most ``model_context`` (a node declaring more
    than the model has is held to the model's: what the request is priced at); without
    any, ``model_context``."""
    best = max((node_context(d, model_context) for d in declared), default=model_context)
    return min(best, model_context)


def context_source(served: int, model_context: int, constrained: bool = False) -> str:
    """Whose ``served`` context a refusal names: the nodes' (the request's own choice of
    them where ``constrained``) when below the model's ``model_context``, else none."""
    if served >= model_context and not constrained:
        return ""
    nodes = "of the nodes this request may use" if constrained else "a live node serving it"
    return f", the largest {nodes} declares now (the model's own: {model_context})"


def check_context(
    prompt_text: str, max_tokens: int, context_length: int, model: str, source: str = ""
) -> None:
    """Raise ContextLengthExceeded when prompt + max_tokens surely exceed the context;
    ``source``: whose context it is (:func:`context_source`), said after it; the error's
    body names the figure, ``context_length``, for a program to read."""
    said = f"{model}'s context length of {context_length} tokens{source}"
    if max_tokens > context_length:
        raise ContextLengthExceeded(
            f"max_tokens={max_tokens} exceeds {said}; ask for fewer tokens "
            f"(the prompt and max_tokens together must fit {context_length})",
            param="max_tokens",
            context_length=context_length,
        )
    est = estimate_min_tokens(prompt_text)
    if est + max_tokens > context_length:
        raise ContextLengthExceeded(
            f"the prompt (at least ~{est} tokens) plus max_tokens={max_tokens} exceeds "
            f"{said}; shorten the prompt or lower max_tokens",
            param="messages",
            context_length=context_length,
        )
