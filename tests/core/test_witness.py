"""The witness's decision and the cosignature/v1 format (c2sp.org/tlog-cosignature, tlog-witness)."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from LLM_Mesh.core.merkle import leaf_hash, root_of
from LLM_Mesh.core.witness import (
    COSIGN,
    FUTURE_S,
    MALFORMED,
    ROLLBACK,
    SIGNATURE,
    SPLIT_VIEW,
    STALE,
    UNKNOWN_ORIGIN,
    BadCosignature,
    Cosigned,
    WitnessKey,
    cosign,
    cosigners,
    decide,
    open_cosignature,
    parse_vkey,
    witness_key,
    witnessed,
)

ORIGIN = "example.test/ledger"
NAME = "witness.example/w1"
LOG = Ed25519PrivateKey.generate()
LOG_PUB = LOG.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
WIT = Ed25519PrivateKey.generate()
WIT_PUB = WIT.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
KEYS = {ORIGIN: [LOG_PUB]}


def _leaves(n: int, fork_at: int | None = None) -> list[bytes]:
    return [leaf_hash(f"{i}{'x' if fork_at is not None and i >= fork_at else ''}".encode())
            for i in range(n)]  # fmt: skip


def _proof(leaves: list[bytes], m: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]), by the definition (a reference for tests)."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [root_of(d)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*subproof(m, d[:k], b), root_of(d[k:])]
        return [*subproof(m - k, d[k:], False), root_of(d[:k])]

    return subproof(m, leaves, True)


def _note(leaves: list[bytes], key: Ed25519PrivateKey = LOG, origin: str = ORIGIN) -> str:
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sign_checkpoint(key, pub, origin, len(leaves), root_of(leaves), 7).note


def _last(leaves: list[bytes]) -> Cosigned:
    return Cosigned(len(leaves), root_of(leaves), _note(leaves))


# -- the cosignature format ----------------------------------------------------------


def _opened(n: int, *cosigns: tuple[Ed25519PrivateKey, str, int]) -> Checkpoint:
    note = _note(_leaves(n))
    note += "".join(cosign(k, name, note, ts) for k, name, ts in cosigns)
    return open_checkpoint(note, ORIGIN, LOG_PUB)


def test_a_cosignature_has_the_specs_layout() -> None:
    note = _note(_leaves(5))
    line = cosign(WIT, NAME, note, 1679315147)
    assert line.startswith(f"\u2014 {NAME} ") and line.endswith("\n") and line.count("\n") == 1
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    assert len(raw) == 4 + 8 + 64
    # key ID = SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 public key)[:4]
    assert raw[:4] == hashlib.sha256(NAME.encode() + b"\n\x04" + WIT_PUB).digest()[:4]
    assert struct.unpack(">Q", raw[4:12]) == (1679315147,)  # u64, big-endian
    body = note.split("\n\n")[0] + "\n"
    message = f"cosignature/v1\ntime 1679315147\n{body}".encode()
    WIT.public_key().verify(raw[12:], message)  # raises if not the spec's message
    assert open_cosignature(line[2:], body, WitnessKey(NAME, WIT_PUB)) == 1679315147


def test_a_cosigned_note_still_opens_with_the_logs_key_and_names_its_cosigners() -> None:
    note = _note(_leaves(5))
    other = Ed25519PrivateKey.generate()
    cosigned = note + cosign(WIT, NAME, note, 100) + cosign(other, "w2", note, 200)
    assert open_checkpoint(cosigned, ORIGIN, LOG_PUB).tree_size == 5
    me, them = witness_key(WIT, NAME), witness_key(other, "w2")
    assert cosigners(cosigned, [me, them]) == {me.vkey: 100, them.vkey: 200}
    assert cosigners(note, [me]) == {}
    # a cosignature from the future counts for nothing
    assert cosigners(cosigned, [me, them], not_after=150) == {me.vkey: 100}


def test_a_cosignature_on_another_checkpoint_or_by_another_key_is_not_one() -> None:
    note, other_note = _note(_leaves(5)), _note(_leaves(6))
    me = witness_key(WIT, NAME)
    moved = other_note + cosign(WIT, NAME, note, 100)  # copied onto another checkpoint
    assert cosigners(moved, [me]) == {}
    body = other_note.split("\n\n")[0] + "\n"
    with pytest.raises(BadCosignature, match="does not verify"):
        open_cosignature(cosign(WIT, NAME, note, 100)[2:], body, me)
    impostor = Ed25519PrivateKey.generate()  # same name, another key: another key ID
    assert cosigners(note + cosign(impostor, NAME, note, 100), [me]) == {}
    # the timestamp is signed: changing it breaks the signature
    raw = bytearray(base64.b64decode(cosign(WIT, NAME, note, 100).rsplit(" ", 1)[1]))
    raw[11] ^= 1
    bumped = f"\u2014 {NAME} {base64.b64encode(bytes(raw)).decode()}\n"
    assert cosigners(note + bumped, [me]) == {}


def test_vkey_round_trip_and_bad_key_texts() -> None:
    me = witness_key(WIT, NAME)
    assert me.vkey.startswith(f"{NAME}+{me.key_id.hex()}+")
    assert base64.b64decode(me.vkey.split("+", 2)[2]) == b"\x04" + WIT_PUB
    assert parse_vkey(me.vkey) == me
    wrong_id = f"{NAME}+00000000+{me.vkey.split('+', 2)[2]}"
    as_log_key = base64.b64encode(b"\x01" + WIT_PUB).decode()  # the log's key type, not 0x04
    log_type = f"{NAME}+{me.key_id.hex()}+{as_log_key}"
    for bad in ("garbage", wrong_id, log_type, f"a b+{me.key_id.hex()}+x"):
        with pytest.raises(BadCosignature):
            parse_vkey(bad)


# -- the decision ----------------------------------------------------------------------


def test_cosigns_the_first_checkpoint_then_an_extension_with_a_proof() -> None:
    five, nine = _leaves(5), _leaves(9)
    d = decide(None, _note(five), KEYS, 0, [])
    assert d.kind == COSIGN and d.checkpoint is not None and d.checkpoint.tree_size == 5
    d = decide(_last(five), _note(nine), KEYS, 5, _proof(nine, 5))
    assert d.ok and "extends the cosigned size 5" in d.message
    d = decide(_last(nine), _note(nine), KEYS, 9, [])  # the same one again
    assert d.ok


def test_refuses_a_fork_at_another_size() -> None:
    """The registry shows the witness a history that shares no prefix with the cosigned
    one beyond entry 2, with its own (valid for the fork) consistency proof."""
    five, fork = _leaves(5), _leaves(9, fork_at=3)
    d = decide(_last(five), _note(fork), KEYS, 5, _proof(fork, 5))
    assert d.kind == SPLIT_VIEW and "does not verify" in d.message
    assert d.checkpoint is not None and d.checkpoint.tree_size == 9  # the evidence, opened


def test_refuses_another_root_at_the_same_size() -> None:
    five, fork = _leaves(5), _leaves(5, fork_at=4)
    d = decide(_last(five), _note(fork), KEYS, 5, [])
    assert d.kind == SPLIT_VIEW and "two roots for size 5" in d.message


def test_refuses_a_rollback() -> None:
    nine, five = _leaves(9), _leaves(5)
    d = decide(_last(nine), _note(five), KEYS, 9, [])
    assert d.kind == ROLLBACK and "smaller than" in d.message


def test_refuses_a_checkpoint_not_signed_by_the_logs_key() -> None:
    five, nine = _leaves(5), _leaves(9)
    forged = _note(nine, key=Ed25519PrivateKey.generate())
    d = decide(_last(five), forged, KEYS, 5, _proof(nine, 5))
    assert d.kind == SIGNATURE and d.checkpoint is None
    tampered = _note(nine).replace(
        base64.b64encode(root_of(nine)).decode(), base64.b64encode(bytes(32)).decode()
    )
    d = decide(_last(five), tampered, KEYS, 5, _proof(nine, 5))
    assert d.kind == SIGNATURE and "does not verify" in d.message


def test_refuses_an_unknown_origin() -> None:
    note = _note(_leaves(5), origin="other.test/log")
    assert decide(None, note, KEYS, 0, []).kind == UNKNOWN_ORIGIN


def test_refuses_a_proof_from_the_wrong_size_or_too_long() -> None:
    five, nine = _leaves(5), _leaves(9)
    assert decide(_last(five), _note(nine), KEYS, 4, _proof(nine, 4)).kind == STALE
    assert decide(None, _note(nine), KEYS, 5, _proof(nine, 5)).kind == STALE
    assert decide(_last(five), _note(nine), KEYS, 5, [bytes(32)] * 64).kind == MALFORMED
    assert decide(None, _note(nine), KEYS, 0, [bytes(32)]).kind == MALFORMED
    # no proof at all is no proof
    assert decide(_last(five), _note(nine), KEYS, 5, []).kind == SPLIT_VIEW


# -- what a verifier requiring witnesses accepts -----------------------------------------


def test_the_newest_checkpoint_witnessed_passes_whatever_its_age() -> None:
    me = witness_key(WIT, NAME)
    got = witnessed([_opened(5, (WIT, NAME, 100))], [me], 1, now=10_000, max_age_s=60)
    assert got.ok and got.checkpoint is not None and got.checkpoint.tree_size == 5
    assert (got.newer, got.age_s, dict(got.cosigned)) == (0, 9_900, {me.vkey: 100})


def test_newer_checkpoints_pass_on_a_witnessed_one_only_while_its_cosignature_is_recent() -> None:
    me = witness_key(WIT, NAME)
    signed = [_opened(9), _opened(7), _opened(5, (WIT, NAME, 1_000)), _opened(3, (WIT, NAME, 900))]
    got = witnessed(signed, [me], 1, now=1_060, max_age_s=60)
    assert got.ok and got.checkpoint is not None
    assert (got.checkpoint.tree_size, got.newer, got.age_s) == (5, 2, 60)
    late = witnessed(signed, [me], 1, now=1_061, max_age_s=60)
    assert not late.ok and late.checkpoint is not None and late.checkpoint.tree_size == 5
    assert (late.newer, late.age_s) == (2, 61)


def test_needed_witnesses_counted_on_one_checkpoint_and_the_age_is_the_needed_ones() -> None:
    other = Ed25519PrivateKey.generate()
    me, them = witness_key(WIT, NAME), witness_key(other, "w2")
    # the newest carries one of two; the one before carries both, the second one older
    signed = [_opened(7, (WIT, NAME, 500)), _opened(5, (WIT, NAME, 400), (other, "w2", 300))]
    got = witnessed(signed, [me, them], 2, now=400, max_age_s=100)
    assert got.ok and got.checkpoint is not None and got.checkpoint.tree_size == 5
    assert (got.newer, got.age_s) == (1, 100)  # the 2nd newest cosignature: 300
    assert not witnessed(signed, [me, them], 2, now=401, max_age_s=100).ok
    one = witnessed(signed, [me, them], 1, now=10_000, max_age_s=0)
    assert one.ok and one.checkpoint is not None and one.checkpoint.tree_size == 7


def test_nothing_witnessed_or_nothing_signed_fails() -> None:
    me = witness_key(WIT, NAME)
    impostor = Ed25519PrivateKey.generate()
    got = witnessed([_opened(5, (impostor, NAME, 100)), _opened(3)], [me], 1, 100, 10**9)
    assert not got.ok and got.checkpoint is None and got.newer == 2
    assert not witnessed([], [me], 1, 100, 10**9).ok
    # a cosignature from the future (past FUTURE_S) counts for nothing
    ahead = witnessed([_opened(5, (WIT, NAME, 100 + FUTURE_S + 1))], [me], 1, 100, 10**9)
    assert not ahead.ok


@pytest.mark.parametrize("timestamp", [0, 2**63 - 1])
def test_a_cosignature_at_either_end_of_its_time_range_opens(timestamp: int) -> None:
    note = _note(_leaves(5))
    body = note.split("\n\n")[0] + "\n"
    line = cosign(WIT, NAME, note, timestamp)
    assert open_cosignature(line[2:], body, WitnessKey(NAME, WIT_PUB)) == timestamp


def test_a_cosignature_time_past_2_63_is_refused_both_ways() -> None:
    note = _note(_leaves(5))
    for timestamp in (-1, 2**63):
        with pytest.raises(ValueError):
            cosign(WIT, NAME, note, timestamp)
    body = note.split("\n\n")[0] + "\n"
    me = witness_key(WIT, NAME)
    raw = me.key_id + struct.pack(">Q", 2**63) + bytes(64)
    with pytest.raises(BadCosignature, match="a timestamp beyond 2\\*\\*63 - 1"):
        open_cosignature(f"{NAME} {base64.b64encode(raw).decode()}", body, me)


def test_63_proof_hashes_are_judged_64_are_malformed() -> None:
    nine, five = _leaves(9), _leaves(5)
    d = decide(_last(five), _note(nine), KEYS, 5, [b"\x01" * 32] * 63)
    assert d.kind not in (MALFORMED, COSIGN)  # judged: it does not verify
    d = decide(_last(five), _note(nine), KEYS, 5, [b"\x01" * 32] * 64)
    assert d.kind == MALFORMED and d.checkpoint is not None and d.checkpoint.tree_size == 9
