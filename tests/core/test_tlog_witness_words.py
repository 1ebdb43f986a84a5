"""``add-checkpoint``'s refusals word for word (core/tlog_witness.py): the 400 body a log's
operator reads, and what a log logs of a witness's answer it cannot read. Each test here
killed a mutant ``tests/core/test_tlog_witness.py`` (which matches a fragment) let live
(2026-12-05)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from LLM_Mesh.core.tlog_witness import (
    Malformed,
    parse_cosignature_lines,
    parse_request,
    parse_size,
    request_body,
)

SIZE = "text/x.tlog.size"


def _says(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(ValueError) as exc:
        call(*args)
    return str(exc.value)


def test_each_malformed_body_in_its_words() -> None:
    cases = [
        (b"old 3\n", "no blank line between the old size and proof, and the checkpoint"),
        (b"new 3\n\n", "the first line is 'old <size>'"),
        (b"old 03\n\nx\n", "old size: not a decimal without leading zeroes: '03'"),
        (
            b"old " + b"1" * 50 + b"\n\nx\n",
            f"old size: not a decimal without leading zeroes: {'1' * 40!r}",
        ),
        (
            b"old 3\n" + b"A" * 70 + b"\n\nx\n",
            f"a proof line is not the standard base64 of 32 bytes: {'A' * 60!r}",
        ),
        (b"old 3\n\n\xff\n", "an add-checkpoint body is UTF-8 text"),
        (b"old 3\n\nmissing\n\n\xe2\x80\x94 a b", "every line of the checkpoint ends in a newline"),
    ]
    for body, words in cases:
        with pytest.raises(Malformed) as exc:
            parse_request(body)
        assert str(exc.value) == words, body
    assert _says(request_body, -1, [], "x\n") == "an old size >= 0 and at most 63 proof hashes"


def test_a_409_size_body_that_is_not_one_line_says_so() -> None:
    """Two lines, or a blank second one, are "one line" refusals (not a decimal's)."""
    for body in (b"1\n2\n", b"1\n\n", b"12\n3\n"):
        assert _says(parse_size, body, SIZE) == (
            f"a text/x.tlog.size body is one line: {body.decode()!r}"
        )
    assert _says(parse_size, b"1" * 50, SIZE) == (
        f"a text/x.tlog.size body is one line: {'1' * 40!r}"
    )
    assert _says(parse_size, b"01\n", SIZE) == (
        "the witness's size: not a decimal without leading zeroes: '01'"
    )
    assert parse_size(b"7\n", SIZE) == 7 and parse_size(b"7\n", None) is None


def test_a_witness_answer_that_is_not_signature_lines_in_its_words() -> None:
    assert _says(parse_cosignature_lines, b"\xff\n") == "a witness's answer is UTF-8 text"
    assert _says(parse_cosignature_lines, b"\xe2\x80\x94 w c2ln") == (
        "a witness's answer is signature lines ending in newlines"
    )
    assert _says(parse_cosignature_lines, b"w c2ln\n") == (
        "a witness's answer is signature lines '\u2014 <name> <base64>'"
    )
    assert parse_cosignature_lines("\u2014 w c2ln\n".encode()) == ["w c2ln"]
