"""C2SP ``tlog-witness``'s ``add-checkpoint`` call: its wire format and answers, pure.

The push side of a witness (https://c2sp.org/tlog-witness, "add-checkpoint"): the log
``POST``s ``<submission prefix>/add-checkpoint`` with a body of

    old <size the log thinks the witness last cosigned>\\n
    <base64 consistency-proof hash>\\n          (0 to 63 lines, RFC 6962 §2.1.2)
    \\n
    <the checkpoint: a signed note, possibly with several signatures>

and the witness answers (its checks in the spec's order; the decision is
``core/witness.decide``'s, the map to HTTP is :func:`refusal`'s):

| answer | when |
|---|---|
| 200, the cosignature line(s) ``— <name> <base64>\\n`` | cosigned (the state persisted first) |
| 400 | a malformed body (:func:`parse_request`); the old size above the checkpoint's |
| 404 | no log key is trusted for the checkpoint's origin |
| 403 | no signature by a trusted key verifies |
| 409, ``text/x.tlog.size``, ``<size>\\n`` | the old size is not the size this witness last cosigned (a rollback lands here too) |
| 409 (plain) | the same size as the one cosigned, another root (a fork) |
| 422 | the consistency proof does not verify (or is not empty from size 0) |

The split of 409 (size) / 409 (root) / 422 follows what v1.0.0 of the spec says and the
reference witnesses do (transparency-dev/witness's and torchwood's handlers answer a bad
proof 422 and a stale size 409 ``text/x.tlog.size``). A size-0 checkpoint must carry the
empty tree's root (``decide``), as the spec's editor's draft adds.

The log's side: :func:`request_body` writes the body, :func:`parse_size` reads a 409's
size, :func:`parse_cosignature_lines` a 200's lines (each then checked against the
witness keys the log trusts: ``core/witness.open_cosignature``; unknown keys' lines are
ignored, as the spec says).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from LLM_Mesh.core.checkpoint import BadCheckpoint, split_note
from LLM_Mesh.core.merkle import HASH_SIZE
from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.core.witness import (
    MALFORMED,
    MAX_PROOF,
    ROLLBACK,
    SIGNATURE,
    SPLIT_VIEW,
    STALE,
    UNKNOWN_ORIGIN,
    Cosigned,
    Decision,
    decide,
)

__all__ = [
    "ADD_CHECKPOINT",
    "MAX_ANSWER",
    "MAX_REQUEST",
    "SIZE_TYPE",
    "AddCheckpoint",
    "Answer",
    "Malformed",
    "judge",
    "origin_of",
    "parse_cosignature_lines",
    "parse_request",
    "parse_size",
    "refusal",
    "request_body",
]

ADD_CHECKPOINT = "/add-checkpoint"
SIZE_TYPE = "text/x.tlog.size"
TEXT = "text/plain; charset=utf-8"
MAX_REQUEST = 16 * 1024  # an old line, 63 proof lines (~2.9 KB) and a note with room to spare
MAX_ANSWER = 16 * 1024  # what a log reads of a witness's answer
_MAX_DIGITS = 19  # sizes are below 2**63
_DASH = "\u2014 "


class Malformed(ValueError):
    """An ``add-checkpoint`` body (or a witness's answer) not of the spec's form."""


@dataclass(frozen=True)
class AddCheckpoint:
    """An ``add-checkpoint`` request: the old size, the proof's hashes, the signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body, ``Content-Type``."""

    status: int
    body: str
    content_type: str = TEXT


def _decimal(text: str, what: str) -> int:
    """An ASCII decimal with no leading zeroes (``0`` itself allowed), below 2**63."""
    if not ascii_digits(text) or len(text) > _MAX_DIGITS or (text[0] == "0" and text != "0"):
        raise Malformed(f"{what}: not a decimal without leading zeroes: {text[:40]!r}")
    return int(text)


def _hash(line: str) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != line:
        raise Malformed(f"a proof line is not the standard base64 of 32 bytes: {line[:60]!r}")
    return raw


def origin_of(note: str) -> str:
    """A checkpoint note's origin: its first line."""
    return note.partition("\n")[0]


def parse_request(body: bytes) -> AddCheckpoint:
    """Read an ``add-checkpoint`` body (module docstring); :class:`Malformed` (400) if it
    is not one: over :data:`MAX_REQUEST` bytes, not UTF-8, no ``old N`` line, more than 63
    proof lines, a line that is not the base64 of a hash, no blank line, no signed note."""
    if len(body) > MAX_REQUEST:
        raise Malformed(f"an add-checkpoint body is at most {MAX_REQUEST} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("an add-checkpoint body is UTF-8 text") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Malformed("no blank line between the old size and proof, and the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise Malformed("the first line is 'old <size>'")
    old = _decimal(first[4:], "old size")
    if len(lines) - 1 > MAX_PROOF:
        raise Malformed(f"at most {MAX_PROOF} consistency proof lines")
    proof = tuple(_hash(line) for line in lines[1:])
    if not note.endswith("\n"):
        raise Malformed("every line of the checkpoint ends in a newline")
    try:
        split_note(note)
    except BadCheckpoint as exc:
        raise Malformed(f"the checkpoint: {exc}") from None
    return AddCheckpoint(old, proof, note)


def request_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The ``add-checkpoint`` body for ``note`` with ``proof`` from ``old_size``."""
    if old_size < 0 or len(proof) > MAX_PROOF:
        raise ValueError(f"an old size >= 0 and at most {MAX_PROOF} proof hashes")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


# -- the witness's answer -----------------------------------------------------------------


def refusal(decision: Decision, request: AddCheckpoint, last: Cosigned | None) -> Answer:
    """The HTTP answer to a request ``decide`` refused (see the table in the docstring)."""
    kind, msg = decision.kind, decision.message + "\n"
    cp = decision.checkpoint
    last_size = last.size if last is not None else 0
    if kind == UNKNOWN_ORIGIN:
        return Answer(404, msg)
    if kind == SIGNATURE or cp is None:
        return Answer(403, msg)
    if request.old_size > cp.tree_size:
        return Answer(400, f"old size {request.old_size} is above the checkpoint's size\n")
    if kind in (ROLLBACK, STALE):
        return Answer(409, f"{last_size}\n", SIZE_TYPE)
    if kind == MALFORMED and len(request.proof) > MAX_PROOF:
        return Answer(400, msg)
    if (
        kind == SPLIT_VIEW
        and last is not None
        and cp.tree_size == last.size
        and not hmac.compare_digest(cp.root_hash, last.root)
    ):
        return Answer(409, msg)  # the same size, another root: not text/x.tlog.size
    return Answer(422, msg)  # a proof that does not verify, or one from 0 that is not empty


def judge(
    last: Cosigned | None, request: AddCheckpoint, log_keys: Mapping[str, Sequence[bytes]]
) -> tuple[Decision, Answer | None]:
    """``decide`` on ``request`` against ``last`` (this witness's state for the note's
    origin) and the refusal's answer (``None`` when it is to be cosigned: the caller then
    persists the new state before answering 200 with the cosignature)."""
    d = decide(last, request.note, log_keys, request.old_size, request.proof)
    return d, (None if d.ok else refusal(d, request, last))


# -- the log's side -----------------------------------------------------------------------


def parse_size(body: bytes, content_type: str | None) -> int | None:
    """The witness's size from a 409's body if it is ``text/x.tlog.size`` (``<size>\\n``),
    else ``None`` (a 409 for another root at the same size); :class:`Malformed` if it
    says ``text/x.tlog.size`` and is not one."""
    if (content_type or "").split(";")[0].strip().lower() != SIZE_TYPE:
        return None
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n") or "\n" in text[:-1]:
        raise Malformed(f"a {SIZE_TYPE} body is one line: {text[:40]!r}")
    return _decimal(text[:-1], "the witness's size")


def parse_cosignature_lines(body: bytes) -> list[str]:
    """A 200's signature lines, dash cut off (``<name> <base64>``); :class:`Malformed` if
    the body is not one or more lines each starting ``— `` and ending in a newline."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("a witness's answer is UTF-8 text") from None
    if not text.endswith("\n"):
        raise Malformed("a witness's answer is signature lines ending in newlines")
    lines = text[:-1].split("\n")
    if not all(line.startswith(_DASH) and " " in line[len(_DASH) :] for line in lines):
        raise Malformed("a witness's answer is signature lines '— <name> <base64>'")
    return [line[len(_DASH) :] for line in lines]
