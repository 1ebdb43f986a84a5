"""The completion tokens the gateway prices for a node's part: at most what it delivered.

Pure (no I/O). A node states its own ``usage.completion_tokens``; the gateway has no
tokenizer. What it can count is the text it relayed for the node, and every honest engine
emits at least one UTF-8 byte of text per generated token (a byte-level BPE token decodes
to one or more bytes; a token that is part of a multi-byte character is held back until
the character is whole, so the bytes still outnumber the tokens), except zero-byte
control tokens: the end token a choice stops at, the odd special token an engine strips
from its text, a stop string it cuts off. So the count the gateway prices
(:func:`priced_completion`) is the node's count, at most the UTF-8 bytes delivered for
that part (:func:`answer_bytes`, :func:`chunk_bytes`) plus :data:`SLACK_PER_CHOICE` per
choice the request asked for. A node that answers ``"Hi"`` and reports ``max_tokens`` is
priced for 2 + 16 tokens, not ``max_tokens``. A request with ``stop`` strings adds, per
choice, the UTF-8 bytes of its longest one (:func:`stop_slack`, at most
:data:`MAX_STOP_SLACK`): an engine in front of vLLM or a llama.cpp server counts the tokens
of the stop string it generated and cut off, up to one a byte (found 2026-12-04, review: a
40-byte stop string's tokens were past the 16 and the honest node under-paid). Without
``stop`` the cap stays as tight as before.

The bytes counted are those of the text a choice generated, in the fields that carry it:
a ``message``'s (a stream: ``delta``'s) ``content`` (a string, or its parts' ``text``),
``reasoning_content`` / ``reasoning``, ``refusal``, its ``tool_calls``' (and the legacy
``function_call``'s) function name and arguments, and a completion choice's ``text``; of
the choices the request asked for (``index`` below its ``n``), not the first only (the
receipt's output hash is the first choice's: :mod:`~LLM_Mesh.core.answer_text`), less a
completion's echoed prompt where a choice begins with it (:func:`echo_bytes`). Nothing
else a node puts in a choice counts, nor a choice past ``n``: no client reads those, so a
node cannot pad its answer with them to be paid more (found 2026-12-04, review). It could
pad the text itself, but only by delivering it to the client. For a **catalog** model only
``content`` (and a completion's ``text``) counts (``text_only``): no catalog model makes
the other fields, and no canary reads them (found 2026-12-06, ``money33``: 400 bytes of
made-up ``reasoning_content`` beside "Hi" were paid, at an honest share of the cap).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from LLM_Mesh.core.pricing import usual_completion_tokens

__all__ = [
    "MAX_STOP_SLACK", "SLACK_PER_CHOICE", "answer_bytes", "chunk_bytes", "completion_cap",
    "counted_completion", "echo_bytes",
    "priced_completion", "states_completion", "stop_slack",
]  # fmt: skip

# zero-byte tokens an honest engine may count per choice: its end token (vLLM and
# llama.cpp count the EOS / end-of-turn token a choice stops at), a few special tokens it
# strips from its text, its template's own stop string it cuts off (core/prompt.py: at
# most 8 bytes; a request's ``stop``: stop_slack). Larger only widens what a node may claim
# without delivering (at most this many tokens a choice)
SLACK_PER_CHOICE = 16
# the most a request's stop strings add to it (:func:`stop_slack`): the default limits'
# longest stop string, 256 characters (core/limits.py ``max_stop_chars``) of up to 4 bytes
MAX_STOP_SLACK = 1024

# the fields of a choice's ``message`` / ``delta`` that carry generated text, as the OpenAI
# API and the engines that extend it (vLLM, llama.cpp's server) name them; nothing else in
# a choice is counted (found 2026-12-04, review: every string was, so a node padded its
# answer with a key no client reads, ``"x_pad": " " * 400``, and was paid its claim)
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
# a catalog model's answer: its content only (``text_only``). No catalog model reasons, and
# the mesh refuses tools and structured output (core/unsupported.py), so an honest node of
# one sends none of the others, and no canary reads them: counted, they let a node pad its
# answer with made-up reasoning and be paid for it, at an honest share of its cap (found
# 2026-12-06, money33). A custom model's (a reasoning model of an operator's own) still count
_CONTENT_ONLY = ("content",)


def _call_strings(call: Any, out: list[str]) -> None:
    """A tool call's (or the legacy ``function_call``'s) function name and arguments."""
    if not isinstance(call, dict):
        return
    function = call.get("function", call)  # tool_calls: {"function": {...}}; function_call: {...}
    if isinstance(function, dict):
        for key in ("name", "arguments"):
            value = function.get(key)
            if isinstance(value, str):
                out.append(value)


def _message_strings(body: dict[str, Any], out: list[str], text_only: bool = False) -> None:
    for key in _CONTENT_ONLY if text_only else _TEXT_FIELDS:
        value = body.get(key)
        if isinstance(value, str):
            out.append(value)
        elif key == "content" and isinstance(value, list):  # content parts: their text
            out.extend(
                part["text"]
                for part in value
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    if text_only:  # (a catalog model's answer: its content only)
        return
    calls = body.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            _call_strings(call, out)
    _call_strings(body.get("function_call"), out)


def _choice_strings(
    choices: Any, key: str, out: list[str], n: int, text_only: bool = False
) -> None:
    """The text of the choices the request asked for: ``index`` 0 to ``n`` - 1 (a choice
    without an index: by its place); another choice reaches no client SDK and is not counted
    (found 2026-12-04, review: a node added a choice ``index`` 7 to a request of ``n`` 1)."""
    if not isinstance(choices, list):
        return
    for place, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", place)
        if type(index) is not int or not 0 <= index < max(1, n):
            continue
        body = choice.get(key)
        if isinstance(body, dict):
            _message_strings(body, out, text_only)
        text = choice.get("text")
        if isinstance(text, str):
            out.append(text)


def _utf8(pieces: list[str]) -> int:
    return len("".join(pieces).encode("utf-8", "surrogatepass"))


def answer_bytes(obj: Any, choices: int = 1, echoed: str = "", text_only: bool = False) -> int:
    """The UTF-8 bytes a whole (non-streamed) answer's ``choices`` (the request's ``n``)
    generated (see the module docstring; ``text_only``: its content only, a catalog model's),
    less an ``echoed`` prompt's in each choice that begins with it (:func:`echo_bytes`); 0
    for anything that is no answer."""
    out: list[str] = []
    if isinstance(obj, dict):
        _choice_strings(obj.get("choices"), "message", out, choices, text_only)
    return max(0, _utf8(out) - sum(echo_bytes(piece, echoed) for piece in out))


def echo_bytes(text: str, echoed: str) -> int:
    """The UTF-8 bytes of the ``echoed`` prompt (a completion's ``echo``: the request's
    prompt) that ``text`` begins with, else 0: text the client sent, not text the node
    generated, so never part of what its count is capped at (found 2026-12-06, ``money33``:
    with ``echo`` a node answering "Hi" to a 400-byte prompt was priced for 418 completion
    tokens, the prompt's bytes again at the completion price)."""
    return _utf8([echoed]) if echoed and text.startswith(echoed) else 0


def echo_advance(matched: int, text: str, echoed: str) -> int:
    """How many characters of the ``echoed`` prompt a streamed choice has begun with once
    its next piece ``text`` came, from ``matched`` before it (-1: it did not begin with it;
    ``len(echoed)``: whole, then it stays). A stream's echo is taken off each choice that
    begins with it, as a whole answer's is (:func:`answer_bytes`; found 2026-12-06,
    attack34: it was taken off once a part, so with ``n`` 2 a choice's echo was paid)."""
    if matched < 0 or matched >= len(echoed):
        return matched
    rest = echoed[matched:]
    if rest.startswith(text):
        return matched + len(text)
    return len(echoed) if text.startswith(rest) else -1


def states_completion(usage: Any) -> bool:
    """Whether a node's ``usage`` states its completion tokens (a whole number)."""
    count = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return type(count) is int


def counted_completion(
    obj: Any, choices: int = 1, limit: int = 0, echoed: str = "", text_only: bool = False
) -> int:
    """The completion tokens the gateway counts for a whole (non-streamed) answer whose node
    stated none (:func:`states_completion`: a node of another make): the usual count of the
    text its ``choices`` generated (``pricing.usual_completion_tokens``: ⌈characters / 3⌉),
    less an ``echoed`` prompt's characters in each, at most ``limit`` (the request's
    ``Job.token_limit``; 0: none). A stream is counted by its content chunks instead. Never
    above :func:`priced_completion`'s bound: a character is at least one UTF-8 byte
    (``text_only``: as that bound's)."""
    out: list[str] = []
    if isinstance(obj, dict):
        _choice_strings(obj.get("choices"), "message", out, choices, text_only)
    characters = sum(len(piece) for piece in out)
    if echoed:
        characters -= len(echoed) * sum(1 for piece in out if piece.startswith(echoed))
    count = usual_completion_tokens(max(0, characters))
    return min(count, limit) if limit > 0 else count


def chunk_bytes(objs: Iterable[Any], choices: int = 1, text_only: bool = False) -> int:
    """The UTF-8 bytes the ``choices`` (the request's ``n``) of a stream's chunks (parsed
    ``data:`` objects, in any order) generated (see the module docstring; ``text_only``:
    their content only, a catalog model's)."""
    out: list[str] = []
    for obj in objs:
        if isinstance(obj, dict):
            _choice_strings(obj.get("choices"), "delta", out, choices, text_only)
    return _utf8(out)


def stop_slack(stops: Iterable[str]) -> int:
    """What a request's ``stop`` strings add to each choice's slack: the UTF-8 bytes of the
    longest (a choice stops at one, and an honest engine counts its tokens, at most one a
    byte, though it cuts the string off), at most :data:`MAX_STOP_SLACK`; 0 without any."""
    longest = max((_utf8([s]) for s in stops if isinstance(s, str)), default=0)
    return min(longest, MAX_STOP_SLACK)


def priced_completion(
    reported: int, delivered_bytes: int, choices: int = 1, stop_bytes: int = 0
) -> int:
    """The completion tokens priced for a node's part: its ``reported`` count, at most the
    ``delivered_bytes`` of text relayed for it plus, for each of the request's ``choices``
    (at least one), :data:`SLACK_PER_CHOICE` and ``stop_bytes`` (:func:`stop_slack` of its
    ``stop``, at most :data:`MAX_STOP_SLACK`). Never more than ``reported``, never below 0."""
    return max(0, min(reported, completion_cap(delivered_bytes, choices, stop_bytes)))


def completion_cap(delivered_bytes: int, choices: int = 1, stop_bytes: int = 0) -> int:
    """The most completion tokens a part is priced for (:func:`priced_completion`'s bound):
    ``delivered_bytes`` + (:data:`SLACK_PER_CHOICE` + the stop slack) a choice. The usage
    audit (``core/usage_audit.py``) compares a node's counts with it."""
    slack = SLACK_PER_CHOICE + min(max(0, stop_bytes), MAX_STOP_SLACK)
    return max(0, delivered_bytes) + slack * max(1, choices)
