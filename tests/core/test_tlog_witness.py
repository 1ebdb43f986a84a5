"""C2SP tlog-witness ``add-checkpoint``: the body's format and the witness's answers, pure."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.merkle import EMPTY_ROOT, root_of
from LLM_Mesh.core.tlog_witness import (
    MAX_REQUEST,
    SIZE_TYPE,
    TEXT,
    AddCheckpoint,
    Answer,
    Malformed,
    judge,
    origin_of,
    parse_cosignature_lines,
    parse_request,
    parse_size,
    request_body,
)
from LLM_Mesh.core.witness import Cosigned, cosign
from tests.core.test_witness import KEYS, LOG, ORIGIN, WIT, _leaves, _note, _proof

SPEC_EXAMPLE_PROOF = [
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=",
]


def _req(old: int, proof: list[bytes], note: str) -> AddCheckpoint:
    """A request as it arrives: written, then parsed (both halves of the format)."""
    return parse_request(request_body(old, proof, note))


def _last(n: int) -> Cosigned:
    leaves = _leaves(n)
    return Cosigned(n, root_of(leaves), _note(leaves))


def test_the_body_is_the_specs_old_line_proof_blank_line_and_note() -> None:
    note = _note(_leaves(5))
    body = request_body(3, [base64.b64decode(h) for h in SPEC_EXAMPLE_PROOF], note)
    assert (
        body == ("old 3\n" + "".join(h + "\n" for h in SPEC_EXAMPLE_PROOF) + "\n" + note).encode()
    )
    req = parse_request(body)
    assert req.old_size == 3 and req.note == note
    assert [base64.b64encode(h).decode() for h in req.proof] == SPEC_EXAMPLE_PROOF
    assert parse_request(request_body(0, [], note)) == AddCheckpoint(0, (), note)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"old 3\n", "no blank line"),
        (b"new 3\n\n", "old <size>"),
        (b"old 03\n\nx\n", "leading zeroes"),
        (b"old -1\n\nx\n", "decimal"),
        (b"old 3 \n\nx\n", "decimal"),
        ("old \u0663\n\nx\n".encode(), "decimal"),  # an Arabic-Indic 3: int() would take it
        (b"old 99999999999999999999\n\nx\n", "decimal"),
        (b"old 3\nnot base64!\n\nx\n", "base64 of 32 bytes"),
        (b"old 3\nAAAA\n\nx\n", "base64 of 32 bytes"),  # 3 bytes
        (b"old 3\n\n\xff\n", "UTF-8"),
        (b"old 3\n\nno signatures\n", "signed note"),
        (b"old 3\n\nmissing\n\n\xe2\x80\x94 a b", "ends in a newline"),
    ],
)
def test_malformed_bodies_are_400s(body: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        parse_request(body)


def test_at_most_63_proof_lines_and_an_oversize_body_is_malformed_unread() -> None:
    note = _note(_leaves(5))
    h = base64.b64encode(b"\x01" * 32).decode()
    ok = f"old 3\n{(h + chr(10)) * 63}\n{note}".encode()
    assert len(parse_request(ok).proof) == 63
    with pytest.raises(Malformed, match="at most 63"):
        parse_request(f"old 3\n{(h + chr(10)) * 64}\n{note}".encode())
    with pytest.raises(Malformed, match=f"at most {MAX_REQUEST} bytes"):
        parse_request(b"old 3\n\n" + b"x" * MAX_REQUEST)
    with pytest.raises(ValueError):
        request_body(3, [b"\x01" * 32] * 64, note)


# -- the witness's answers --------------------------------------------------------------


def test_first_checkpoint_then_an_extension_are_cosigned() -> None:
    leaves = _leaves(7)
    d, ans = judge(None, _req(0, [], _note(leaves[:3])), KEYS)
    assert d.ok and ans is None
    d, ans = judge(_last(3), _req(3, _proof(leaves, 3), _note(leaves)), KEYS)
    assert d.ok and ans is None and d.checkpoint is not None and d.checkpoint.tree_size == 7
    # the same checkpoint again (a retry whose answer was lost): cosigned again
    d, ans = judge(_last(7), _req(7, [], _note(leaves)), KEYS)
    assert d.ok and ans is None


def test_a_rollback_is_409_with_the_cosigned_size_or_400_when_old_is_above_the_size() -> None:
    """The attack: a smaller tree than the one cosigned (history cut)."""
    leaves = _leaves(3)
    d, ans = judge(_last(7), _req(0, [], _note(leaves)), KEYS)
    assert not d.ok and ans is not None
    assert (ans.status, ans.body, ans.content_type) == (409, "7\n", SIZE_TYPE)
    # claiming the old size the witness holds, above the offered checkpoint's: 400
    _, ans = judge(_last(7), _req(7, [], _note(leaves)), KEYS)
    assert ans is not None and ans.status == 400


def test_a_fork_at_the_same_size_is_409_not_a_size() -> None:
    """The attack: the same size as cosigned, another root (a split view)."""
    forked = _leaves(7, fork_at=2)
    d, ans = judge(_last(7), _req(7, [], _note(forked)), KEYS)
    assert not d.ok and ans is not None
    assert ans.status == 409 and ans.content_type != SIZE_TYPE and "two roots" in ans.body


def test_a_fork_at_another_size_or_a_bad_proof_is_422() -> None:
    """The attack: another history from entry 2, with its own (valid for it) proof; and
    a proof with one hash flipped."""
    forked = _leaves(9, fork_at=2)
    d, ans = judge(_last(5), _req(5, _proof(forked, 5), _note(forked)), KEYS)
    assert not d.ok and ans is not None and ans.status == 422
    real = _leaves(9)
    bad = _proof(real, 5)
    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
    _, ans = judge(_last(5), _req(5, bad, _note(real)), KEYS)
    assert ans is not None and ans.status == 422
    # a proof from 0 is empty: anything else does not verify
    _, ans = judge(None, _req(0, [b"\x01" * 32], _note(real)), KEYS)
    assert ans is not None and ans.status == 422
    # a size-0 checkpoint must have the empty tree's root
    pub = LOG.public_key().public_bytes_raw()
    from LLM_Mesh.core.checkpoint import sign_checkpoint

    zero = sign_checkpoint(LOG, pub, ORIGIN, 0, b"\x02" * 32, 1).note
    _, ans = judge(None, _req(0, [], zero), KEYS)
    assert ans is not None and ans.status == 422
    assert judge(None, _req(0, [], sign_checkpoint(LOG, pub, ORIGIN, 0, EMPTY_ROOT, 1).note), KEYS)[
        0
    ].ok


def test_a_stale_old_size_is_409_with_the_size() -> None:
    real = _leaves(9)
    _, ans = judge(_last(5), _req(3, _proof(real, 3), _note(real)), KEYS)
    assert ans is not None and (ans.status, ans.body, ans.content_type) == (409, "5\n", SIZE_TYPE)
    _, ans = judge(None, _req(5, _proof(real, 5), _note(real)), KEYS)
    assert ans is not None and (ans.status, ans.body) == (409, "0\n")  # never cosigned: 0


def test_an_unknown_key_is_403_and_an_unknown_origin_404() -> None:
    """The attack: a checkpoint signed by a key the witness does not trust for the origin
    (the right origin, another key; or a body edited after signing)."""
    stranger = Ed25519PrivateKey.generate()
    real = _leaves(5)
    d, ans = judge(None, _req(0, [], _note(real, key=stranger)), KEYS)
    assert not d.ok and ans is not None and ans.status == 403 and d.checkpoint is None
    edited = _note(real).replace("\n5\n", "\n6\n", 1)
    _, ans = judge(None, _req(0, [], edited), KEYS)
    assert ans is not None and ans.status == 403
    _, ans = judge(None, _req(0, [], _note(real, origin="other.test/log")), KEYS)
    assert ans is not None and ans.status == 404
    # a 409 tells nothing before the signature checks out
    _, ans = judge(_last(5), _req(1, [], _note(real, key=stranger)), KEYS)
    assert ans is not None and ans.status == 403


# -- the log's side ------------------------------------------------------------------------


def test_a_409s_size_is_read_only_as_the_spec_writes_it() -> None:
    assert parse_size(b"50\n", SIZE_TYPE) == 50
    assert parse_size(b"0\n", "text/x.tlog.size; charset=utf-8") == 0
    assert parse_size(b"two roots\n", "text/plain") is None
    for bad in (b"50", b"050\n", b"", b"5\n0\n", b"-1\n"):
        with pytest.raises(Malformed):
            parse_size(bad, SIZE_TYPE)


def test_a_200s_cosignature_lines() -> None:
    note = _note(_leaves(5))
    a, b = cosign(WIT, "w1", note, 1), cosign(WIT, "w2", note, 2)
    assert parse_cosignature_lines((a + b).encode()) == [a[2:-1], b[2:-1]]
    for bad in (b"", a[:-1].encode(), b"hello\n", (a + "\n").encode(), b"\xff\n"):
        with pytest.raises(Malformed):
            parse_cosignature_lines(bad)


def test_each_refusal_answers_its_decisions_message_as_one_line_of_text() -> None:
    stranger = Ed25519PrivateKey.generate()
    real, forked = _leaves(9), _leaves(9, fork_at=2)
    cases = [
        (None, _req(0, [], _note(real, origin="other.test/log")), 404),
        (None, _req(0, [], _note(real, key=stranger)), 403),
        (_last(5), _req(5, _proof(forked, 5), _note(forked)), 422),
        (_last(9), _req(9, [], _note(forked)), 409),  # the same size, another root
        (_last(3), AddCheckpoint(3, (b"\x01" * 32,) * 64, _note(real)), 400),
    ]
    for last, request, status in cases:
        d, ans = judge(last, request, KEYS)
        assert ans == Answer(status, d.message + "\n", TEXT), status
    # 63 hashes are not too many: the proof is judged (and does not verify)
    _, ans = judge(_last(3), AddCheckpoint(3, (b"\x01" * 32,) * 63, _note(real)), KEYS)
    assert ans is not None and ans.status == 422
    _, ans = judge(_last(9), _req(0, [], _note(_leaves(3))), KEYS)  # a rollback
    assert ans == Answer(409, "9\n", SIZE_TYPE)
    _, ans = judge(_last(3), _req(5, [], _note(_leaves(3))), KEYS)
    assert ans == Answer(400, "old size 5 is above the checkpoint's size\n", TEXT)


def test_a_notes_origin_is_its_first_line() -> None:
    note = _note(_leaves(3))
    assert origin_of(note) == ORIGIN
    assert origin_of("a.test/log\n2\nroot\n") == "a.test/log"
    assert origin_of("no newline") == "no newline"


def test_a_body_of_exactly_max_request_bytes_is_read() -> None:
    note = _note(_leaves(5))
    body = f"old 0\n\n{note}".encode()
    padded = body[:-1] + b" " * (MAX_REQUEST - len(body)) + b"\n"
    assert len(padded) == MAX_REQUEST and parse_request(padded).old_size == 0
    with pytest.raises(Malformed, match=f"at most {MAX_REQUEST} bytes"):
        parse_request(padded + b"\n")


def test_a_409s_size_body_is_one_line_and_its_type_is_required() -> None:
    for bad in (b"\n5\n", b"5\n\n", b"\xff\n", b"5\xff\n"):
        with pytest.raises(Malformed):
            parse_size(bad, SIZE_TYPE)
    assert parse_size(b"5\n", None) is None  # no Content-Type: not a size
    assert parse_size(b"9223372036854775807\n", SIZE_TYPE) == 2**63 - 1
    with pytest.raises(Malformed):
        parse_size(b"12345678901234567890\n", SIZE_TYPE)


def test_63_proof_hashes_are_written_and_judged_not_refused_as_too_many() -> None:
    note = _note(_leaves(5))
    assert len(parse_request(request_body(3, [b"\x01" * 32] * 63, note)).proof) == 63
    # from the empty tree a proof must be empty: 63 hashes are that refusal (422), not 400
    _, ans = judge(None, AddCheckpoint(0, (b"\x01" * 32,) * 63, note), KEYS)
    assert ans is not None and ans.status == 422


def test_a_cosignature_line_must_start_with_the_dash() -> None:
    with pytest.raises(Malformed):
        parse_cosignature_lines(b"w1 AAAA\n")
