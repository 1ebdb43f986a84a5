"""A node's prompt count said before its first token: what a stream the client cuts pays.

Pure (no I/O). A stream's prompt is charged at the node's own count, which it states in
its final (usage) chunk; a client that cuts the stream before that chunk left the gateway
without it, and the gateway (no tokenizer) charged its usual count, ⌈characters / 3⌉ + 5 a
message + 16 (``core/pricing.usual_prompt_tokens``): a third of the tokens the node
processed or less for text a tokenizer splits finer (digits on Gemma, one a token; CJK
text, about one a character), so a client asking ``max_tokens`` K + 1 and leaving after K
tokens paid a third of a long prompt (found open 2026-12-06, ``money33``; closed
2026-12-06, ``money34``). Our node knows the count before its first token (its engine
tokenized the prompt: ``Delta.prompt_tokens``) and, as a stream's answer opens, says it in
the :data:`HDR_PROMPT_TOKENS` response header; the gateway charges a stream the client
cut at that count (``registry/account.charged_prompt_tokens``), priced as the final count
is: at most the estimate's bound of the prompt (``Job.prompt_bound``, its UTF-8 bytes +
8 a message + 16: above any honest count). A node that said nothing (an older node, an
engine that learns the count only at the end: ``openai``) is charged the usual count, as
before. The header is the node's word, as its final ``usage`` is (neither is signed
until the node's receipt, in its final chunk); it is only believed for a cut the client
made, never for the node's own break (a node that claimed the bound and broke off would
escape the usage audit, which judges finished answers only).
"""

from __future__ import annotations

__all__ = ["HDR_PROMPT_TOKENS", "MAX_DIGITS", "said_prompt_tokens"]

HDR_PROMPT_TOKENS = "X-Mesh-Prompt-Tokens"
MAX_DIGITS = 12  # more than any prompt's bound (a body of at most 16 MiB: 2^24 bytes)


def said_prompt_tokens(value: str | None) -> int:
    """The count a node's :data:`HDR_PROMPT_TOKENS` says: a whole number written in at most
    :data:`MAX_DIGITS` ASCII digits; 0 (not said) for none or anything else."""
    if value is None:
        return 0
    text = value.strip()
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return 0
    return int(text)
