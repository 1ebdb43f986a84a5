"""Request limits: pure rules, plain data in, a :class:`Violation` (or ``None``) out.

The gateway's parse stage (:mod:`LLM_Mesh.registry.parse`) and the node's own
``/v1`` endpoints run these before anything else is done with a request, so an
oversized or abusive body is refused in a few milliseconds and never reaches a
node or an engine. Every limit is a field of :class:`RequestLimits`
(``Settings.limits``, one ``LLM_MESH_MAX_*`` variable each); a refusal names the
limit (``Violation.limit``, the field's name), the request field (``param``) and
both numbers.

| limit | default | what it counts |
|---|---|---|
| ``max_body_bytes`` | 1 MiB | the request body's bytes (413) |
| ``max_json_depth`` | 32 | nesting of JSON arrays and objects (the body itself is 1) |
| ``max_json_containers`` | 20,000 | JSON arrays and objects in the body: parsing 1 MiB of ``[[],[],...]`` costs the gateway about 0.2–0.5 s of CPU, 20,000 of them a few ms |
| ``max_messages`` | 512 | entries of ``messages`` |
| ``max_content_chars`` | 524,288 | characters of message content (text parts) or of the prompt |
| ``max_n`` | 1 | ``n``: choices per request (every engine gives one) |
| ``max_stop`` | 4 | ``stop`` sequences (OpenAI's own limit) |
| ``max_stop_chars`` | 256 | characters of one ``stop`` sequence |

The prompt and ``max_tokens`` against the model's context are checked by
:func:`LLM_Mesh.core.validation.check_context` (an estimate: no tokenizer here).

The checks tolerate fields of the wrong type (the request model's validation
names those); they only count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from itertools import accumulate, chain
from operator import sub
from typing import Any

from LLM_Mesh.errors import LimitExceeded, PayloadTooLarge

__all__ = [
    "GATEWAY_MARGIN_BYTES",
    "MIB",
    "RequestLimits",
    "Violation",
    "check_body",
    "check_body_size",
    "check_depth",
    "grown_past",
    "json_depth",
    "json_shape",
    "limit_error",
    "nesting_violation",
    "sent_size",
    "unsent_too_large",
]

MIB = 1 << 20

#: the most bytes the gateway adds to a client's body when it forwards it to a node: its own
#: members, ``"mesh_priority":"keyed"`` (24 bytes, ``core/priority.py``) and a stream's
#: ``"stream_options":{"include_usage":true}`` (39 bytes, ``registry/send_stream.py``), with
#: room to spare. A node accepts a body of up to its ``max_body_bytes`` plus this
#: (``node/app.py``), so a node whose limit equals the gateway's never refuses a body the
#: gateway accepted for the gateway's own additions (found 2026-12-05)
GATEWAY_MARGIN_BYTES = 1024


def grown_past(body_bytes: int, limit: int, margin: int = GATEWAY_MARGIN_BYTES) -> bool:
    """Whether a node's 413 of a client body of ``body_bytes`` may be the gateway's own doing:
    the body is within ``margin`` of the gateway's ``limit`` (``max_body_bytes``), so the
    members the gateway adds can take it past a node limit equal to the gateway's (an older
    node, without the margin): an honest refusal, not the node's failure
    (``registry/second_opinion.py``)."""
    return body_bytes > limit - margin


@dataclass(frozen=True)
class RequestLimits:
    """The limits one process applies to every inference request (see the module doc)."""

    max_body_bytes: int = MIB
    max_json_depth: int = 32
    max_json_containers: int = 20_000
    max_messages: int = 512
    max_content_chars: int = 512 * 1024
    max_n: int = 1
    max_stop: int = 4
    max_stop_chars: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class Violation:
    """One limit a request exceeds: which, where, how much."""

    limit: str  # the RequestLimits field, e.g. "max_messages"
    param: str | None  # the request field, e.g. "messages" (None: the body as a whole)
    allowed: int
    actual: int  # what the request has (for nesting: at least this)
    message: str
    status: int = 400  # 413 for the body's size


def check_body_size(size: int, limits: RequestLimits) -> Violation | None:
    """The body's byte count against ``max_body_bytes``."""
    if size <= limits.max_body_bytes:
        return None
    return Violation(
        "max_body_bytes",
        None,
        limits.max_body_bytes,
        size,
        f"the request body is {size} bytes; the limit is {limits.max_body_bytes} bytes "
        "(max_body_bytes)",
        status=413,
    )


def sent_size(body: dict[str, Any]) -> int:
    """``body``'s bytes as ``MeshClient`` sends it: httpx's JSON (compact, UTF-8, non-ASCII
    as itself; a quote, a backslash or a control character 2 bytes, or 6 as ``\\uXXXX``)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return len(text.encode("utf-8", "surrogatepass"))


def unsent_too_large(body: dict[str, Any], prompt: str, limit: int) -> LimitExceeded | None:
    """A request ``body`` (``prompt`` in it) over a gateway's ``limit``, refused before it
    is sent: its size, the limit, why (found 2026-12-06, cli37: ``ask`` read a prompt to
    ``LLM_MESH_MAX_BODY_BYTES`` and sent it whatever its JSON came to; the gateway's 413
    came back for a prompt of newlines or quotes under that bound)."""
    size = sent_size(body)
    if size <= limit:
        return None
    raw = len(prompt.encode("utf-8", "surrogatepass"))
    as_json = sent_size({"": prompt}) - 7  # less {"":""}, the framing
    return LimitExceeded(
        f"the request would be {size:,} bytes as JSON, over the gateway's limit of {limit:,} "
        f"bytes (LLM_MESH_MAX_BODY_BYTES): not sent. The prompt is {raw:,} bytes, {as_json:,} "
        "as JSON (a quote, a backslash or a control character such as a line end takes 2 to "
        "6 bytes), with the request's other fields: shorten the prompt; if the gateway's "
        "limit was raised, set LLM_MESH_MAX_BODY_BYTES to it here too",
        limit="max_body_bytes",
        allowed=limit,
    )


_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_RUNS = re.compile(rb"\[+|\]+")


def json_depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests arrays and objects (:func:`json_shape`)."""
    return json_shape(raw)[0]


def json_shape(raw: bytes) -> tuple[int, int]:
    """How deeply the JSON text ``raw`` nests arrays and objects, and how many it has.

    ``{}`` and ``[]`` are depth 1, ``{"a": [1]}`` is 2, a scalar 0. It reads the bytes of UTF-8
    JSON before parsing (so a hostile body is refused before the parser recurses or
    allocates) with bytes operations only, no Python loop per character: escapes go, then
    everything but brackets and quotes; adjacent quotes go (they never hide a bracket), the
    strings left (those holding brackets) go; what is left are the containers' brackets (a
    count of the openers is the number of containers); two rounds strip the innermost pairs,
    and the running count of what is left is summed run by run. For text that is not valid
    JSON the answer is meaningless (the parser refuses that text anyway). UTF-16 and UTF-32
    text (which ``json.loads`` accepts) is read as such.
    """
    encoding = json.detect_encoding(raw)
    if encoding not in ("utf-8", "utf-8-sig"):  # UTF-16/32, as json.loads reads them
        try:
            raw = raw.decode(encoding).encode()
        except UnicodeError:
            return 0, 0  # not JSON: the parser says so
    s = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKETS_OR_QUOTES)
    s = s.replace(b'""', b"")
    if b'"' in s:
        s = b"".join(s.split(b'"')[0::2])
    s = s.replace(b"{", b"[").replace(b"}", b"]")
    containers = s.count(b"[")
    depth = 0
    for _ in range(2):  # each round removes exactly one level (the containers of no container)
        if not s:
            return depth, containers
        s = s.replace(b"[]", b"")
        depth += 1
    if not s:
        return depth, containers
    runs = list(map(len, _RUNS.findall(s)))
    opened = accumulate(runs[0::2])  # balanced text starts with "[": runs alternate [ ] [ ...
    closed = chain((0,), accumulate(runs[1::2]))
    return depth + max(map(sub, opened, closed), default=0), containers


def check_depth(raw: bytes, limits: RequestLimits) -> Violation | None:
    """The body's JSON nesting against ``max_json_depth``, then its number of arrays and
    objects against ``max_json_containers``: both before the parser sees it."""
    # every container opens with a "[" or "{" byte (in any of JSON's encodings), so a body
    # with no more of them than both limits is within them: two C counts instead of the walk
    if raw.count(b"[") + raw.count(b"{") <= min(limits.max_json_depth, limits.max_json_containers):
        return None
    depth, containers = json_shape(raw)
    if depth > limits.max_json_depth:
        return _nesting(limits, depth)
    if containers > limits.max_json_containers:
        return Violation(
            "max_json_containers",
            None,
            limits.max_json_containers,
            containers,
            f"the request body has {containers} JSON arrays and objects; the limit is "
            f"{limits.max_json_containers} (max_json_containers)",
        )
    return None


def _nesting(limits: RequestLimits, depth: int) -> Violation:
    return Violation(
        "max_json_depth",
        None,
        limits.max_json_depth,
        depth,
        f"the request body nests arrays and objects more than {limits.max_json_depth} deep "
        "(max_json_depth)",
    )


def nesting_violation(limits: RequestLimits) -> Violation:
    """What to answer when the JSON parser itself gave up on the nesting."""
    return _nesting(limits, limits.max_json_depth + 1)


def _content_chars(content: Any) -> int:
    """The characters of a message's content as the gateway and the nodes read it
    (``ChatMessage.text``, ``message_text``): a part's ``text`` that is not a string (a
    list, an object) is read as its ``str()``, so it counts as that."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and "text" in part:
                text = part["text"]
                total += len(text) if isinstance(text, str) else len(str(text))
        return total
    return 0


def _prompt_chars(prompt: Any) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(p) for p in prompt if isinstance(p, str))
    return 0


def check_body(body: dict[str, Any], limits: RequestLimits) -> Violation | None:
    """A parsed chat or completion body against the count limits; the first one exceeded.

    In order: ``messages`` count, content characters (messages, else ``prompt``),
    ``n``, ``stop`` count, one ``stop`` sequence's length.
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        count = len(messages)
        if count > limits.max_messages:
            return Violation(
                "max_messages",
                "messages",
                limits.max_messages,
                count,
                f"the request has {count} messages; the limit is {limits.max_messages} "
                "(max_messages)",
            )
        chars = sum(_content_chars(m.get("content")) for m in messages if isinstance(m, dict))
        param = "messages"
    else:
        chars = _prompt_chars(body.get("prompt"))
        param = "prompt"
    if chars > limits.max_content_chars:
        return Violation(
            "max_content_chars",
            param,
            limits.max_content_chars,
            chars,
            f"the {param} hold {chars} characters; the limit is {limits.max_content_chars} "
            "(max_content_chars)",
        )
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > limits.max_n:
        return Violation(
            "max_n", "n", limits.max_n, n, f"n={n}; the limit is {limits.max_n} (max_n)"
        )
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if len(stops) > limits.max_stop:
        return Violation(
            "max_stop",
            "stop",
            limits.max_stop,
            len(stops),
            f"stop has {len(stops)} sequences; the limit is {limits.max_stop} (max_stop)",
        )
    # (no generator made for a request without stops, the usual one; perf45)
    longest = max((len(s) for s in stops if isinstance(s, str)), default=0) if stops else 0
    if longest > limits.max_stop_chars:
        return Violation(
            "max_stop_chars",
            "stop",
            limits.max_stop_chars,
            longest,
            f"a stop sequence has {longest} characters; the limit is {limits.max_stop_chars} "
            "(max_stop_chars)",
        )
    return None


def limit_error(v: Violation) -> LimitExceeded:
    """The mesh error for a violation: 400 ``limit_exceeded`` or 413 ``request_too_large``,
    with ``param`` and ``limit``/``allowed`` beside OpenAI's fields."""
    cls = PayloadTooLarge if v.status == 413 else LimitExceeded
    return cls(v.message, param=v.param, limit=v.limit, allowed=v.allowed)
