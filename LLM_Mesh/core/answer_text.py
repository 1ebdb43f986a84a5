"""The text of an OpenAI answer: what a receipt's output hash is taken over.

One rule for the node that signs, the gateway that checks and countersigns, and the
offline verifier: the output of an answer (``n`` is 1) is the text its first choice
carries, UTF-8: a chat answer's ``message.content``, a completion's ``text``; for a
stream, the concatenation of every chunk's ``delta.content`` (chat) or ``text``
(completion), in order. A completion's ``echo`` is part of it (the client got it).

**Choice indexes** (:func:`choice_fault`). A node's answer, or a stream chunk, whose
choices are not those the request asked for breaks the protocol: a choice that is not an
object, an ``index`` that is not an integer (a string, a float, a boolean, ``null``) or
outside ``[0, n)`` (``n`` the request's; a choice without one is read by its place), or
two choices of one index in one answer or chunk. The gateway reads such an answer as no
answer (``registry/node_answer.py``: another node answers) and such a chunk as a break of
the node's part (``registry/stream_part.py``: never relayed, counted or priced; continued
elsewhere), and a stream's floor counts no such chunk as output
(``core/stream_guard.carries_output``, the client's floor too). Found 2026-12-05
(``choiceidx31``): a stream of ``index: 1`` chunks to a request of ``n`` 1 passed the
floor, reached the client and the receipt's output hash (this module read the first
choice whatever its index), and was paid its slack (16 tokens) for choice 0's nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "answer_text",
    "choice_fault",
    "chunk_finished",
    "chunk_text",
    "not_an_answer",
    "objects_text",
    "output_sha256",
    "stream_objects",
    "stream_text",
]


def _first_choice(obj: dict[str, Any]) -> dict[str, Any] | None:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def choice_fault(obj: dict[str, Any], n: int = 1) -> str | None:
    """Why the ``choices`` of a node's answer or stream chunk ``obj`` are not those a
    request of ``n`` choices asked for (see the module docstring), else ``None`` (no
    ``choices`` list: none to judge here)."""
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return None
    seen: set[int] = set()
    for place, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return f"its choice {place} is not an object"
        index = choice.get("index", place)
        if type(index) is not int:
            return f"a choice's index is not an integer but {type(index).__name__}"
        if not 0 <= index < max(1, n):
            return f"a choice's index {str(index)[:40]} is not one of the {max(1, n)} asked for"
        if index in seen:
            return f"two of its choices have index {index}"
        seen.add(index)
    return None


def not_an_answer(obj: dict[str, Any], n: int = 1) -> str | None:
    """Why a node's 200 JSON object is no OpenAI answer (an ``error`` object, no choice,
    choices the request of ``n`` did not ask for: :func:`choice_fault`), else ``None``:
    passed on, it would be an error in the gateway's name with its receipt, or nothing,
    paid and counted as an answer (found 2026-12-05)."""
    if "error" in obj:
        return "the node's answer is an error object"
    if _first_choice(obj) is None:
        return "the node's answer has no choice"
    if (why := choice_fault(obj, n)) is not None:
        return f"the node's answer breaks the protocol: {why}"
    return None


def chunk_text(obj: dict[str, Any]) -> str:
    """The text a stream chunk adds (chat ``delta.content`` or completion ``text``), else ``""``."""
    first = _first_choice(obj)
    if first is None:
        return ""
    delta = first.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    text = first.get("text")
    return text if isinstance(text, str) else ""


def chunk_finished(obj: dict[str, Any]) -> bool:
    """Whether a stream chunk ends its (first) choice: a ``finish_reason`` such as
    ``"stop"`` or ``"length"``. A stream whose node broke after it was over, not cut: it is
    not continued elsewhere (found 2026-12-05: another node appended text to a finished
    answer, and both were paid)."""
    first = _first_choice(obj)
    if first is None:
        return False
    reason = first.get("finish_reason")
    return isinstance(reason, str) and reason != ""


def answer_text(obj: dict[str, Any]) -> str:
    """The text of a whole (non-streamed) answer: chat ``message.content`` or ``text``."""
    first = _first_choice(obj)
    if first is None:
        return ""
    message = first.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        return content if isinstance(content, str) else ""
    text = first.get("text")
    return text if isinstance(text, str) else ""


def stream_text(data_lines: Iterable[str]) -> tuple[str, int]:
    """Text and content chunks of a stream's ``data:`` lines (other lines are skipped)."""
    return objects_text(stream_objects(data_lines))


def objects_text(objs: Iterable[Any]) -> tuple[str, int]:
    """Text and content chunks of a stream's parsed ``data:`` objects (:func:`stream_objects`)."""
    parts = [piece for obj in objs if isinstance(obj, dict) and (piece := chunk_text(obj))]
    return "".join(parts), len(parts)


def stream_objects(data_lines: Iterable[str]) -> list[Any]:
    """The JSON values of a stream's ``data:`` lines that hold an object (others skipped).

    They are parsed in one ``json.loads`` of them all as one array (half the time of one
    call per line); when a line is not one JSON object, line by line, skipping it.
    """
    payloads = [p for p in (ln[5:].strip() for ln in data_lines if ln.startswith("data:"))
                if p.startswith("{")]  # fmt: skip
    try:
        objs: list[Any] = json.loads("[" + ",".join(payloads) + "]")
    except (ValueError, RecursionError):  # a node's JSON, nested past the parser's limit
        objs = []
    if len(objs) != len(payloads):  # a line that is not one JSON object: line by line
        objs = []
        for payload in payloads:
            try:
                objs.append(json.loads(payload))
            except (ValueError, RecursionError):
                continue
    return objs


def output_sha256(text: str) -> str:
    """The output hash of ``text``: SHA-256 of its UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
