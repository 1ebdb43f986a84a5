"""The witness's decision and the cosignature/v1 format (c2sp.org/tlog-cosignature, tlog-witness)."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from LLM_Mesh.core.merkle import EMPTY_ROOT, leaf_hash, root_of
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
    Witnessed,
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
        with pytest.raises(ValueError, match=r"^a cosignature's timestamp is 0 to 2\*\*63 - 1$"):
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


# -- names, key texts and lines: refused in words, parsed exactly ------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_a_witness_name_is_1_to_128_printable_characters_without_spaces_or_plus() -> None:
    for good in ("w", "w" * 128, "witness.example/w1"):
        assert WitnessKey(good, WIT_PUB).name == good
    why = "^a witness name is 1 to 128 printable characters without spaces or '\\+'$"
    for bad in ("", "w" * 129, "w 1", "w+1", "w\n1", "w\x001", "w\u00a01"):
        with pytest.raises(BadCosignature, match=why):
            WitnessKey(bad, WIT_PUB)


def test_a_witness_key_is_32_bytes_in_words() -> None:
    for size in (31, 33):
        with pytest.raises(
            BadCosignature, match=r"^a witness key is a 32-byte Ed25519 public key$"
        ):
            WitnessKey(NAME, bytes(size))


def test_a_witness_key_whose_base64_holds_a_plus_round_trips() -> None:
    """The key ID and the key are separated by the first ``+`` after the name: the base64
    of the key may hold more."""
    keys = (
        witness_key(Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32), NAME) for i in range(64)
    )
    with_plus = [wk for wk in keys if "+" in wk.vkey.split("+", 2)[2]]
    assert with_plus  # fixed keys: about half have a '+' in their 44 base64 characters
    for wk in with_plus:
        assert parse_vkey(wk.vkey) == wk


def test_a_witness_key_text_is_refused_in_words() -> None:
    me = witness_key(WIT, NAME)
    kid, key64, short64 = me.key_id.hex(), _b64(b"\x04" + WIT_PUB), _b64(b"\x04" + WIT_PUB[:31])
    garbage = "x" * 100
    with pytest.raises(BadCosignature) as exc:
        parse_vkey(garbage)
    assert str(exc.value) == (
        f"{'x' * 80!r} is not a witness key (<name>+<key ID hex>+<base64 of 0x04 and the "
        "Ed25519 public key>: what `llm-mesh ledger witness` prints)"
    )
    for bad in (
        f"{NAME}+{kid}+{key64[:10]}!{key64[10:]}",  # a character base64 does not have
        f"{NAME}+{kid}+{short64}",  # a key one byte short
        f"{NAME}+{kid}{key64}",  # no second '+'
    ):
        with pytest.raises(BadCosignature, match="is not a witness key"):
            parse_vkey(bad)
    with pytest.raises(BadCosignature) as exc:
        parse_vkey(f"{NAME}+00000000+{key64}")
    assert str(exc.value) == f"witness key {NAME!r}: its key ID does not match its name and key"


def test_a_line_under_the_witness_name_that_is_not_its_cosignature_is_none() -> None:
    """``None`` (another key's line, or not a cosignature at all), not a refusal: only a
    line of the witness's key ID and the cosignature's length is judged."""
    note = _note(_leaves(5))
    body = note.split("\n\n")[0] + "\n"
    me = witness_key(WIT, NAME)
    good = cosign(WIT, NAME, note, 100)[2:].strip()
    assert open_cosignature(good, body, me) == 100
    raw = base64.b64decode(good.rsplit(" ", 1)[1])
    for line in (
        f"{good[:-8]}!{good[-8:]}",  # a character base64 does not have
        f"{NAME} {_b64(bytes(4) + raw[4:])}",  # another key ID, the right length
        f"{NAME} {_b64(raw[:40])}",  # this key ID, too short
        f"{NAME} {_b64(raw + bytes(1))}",  # this key ID, too long
    ):
        assert open_cosignature(line, body, me) is None
        assert cosigners(note + f"\u2014 {line}\n", [me]) == {}


def test_a_bad_line_of_a_witness_does_not_hide_its_good_one() -> None:
    note, other_note = _note(_leaves(5)), _note(_leaves(6))
    me = witness_key(WIT, NAME)
    bad = cosign(WIT, NAME, other_note, 50)  # its key, another checkpoint: does not verify
    assert cosigners(note + bad + cosign(WIT, NAME, note, 100), [me]) == {me.vkey: 100}


def test_of_several_cosignatures_by_one_witness_the_newest_counts() -> None:
    note = _note(_leaves(5))
    me = witness_key(WIT, NAME)
    for times in ((200, 100), (100, 200), (100, 300, 200)):
        lines = "".join(cosign(WIT, NAME, note, t) for t in times)
        assert cosigners(note + lines, [me]) == {me.vkey: max(times)}


def test_a_cosignature_at_not_after_counts_one_second_later_does_not() -> None:
    note = _note(_leaves(5))
    me = witness_key(WIT, NAME)
    cosigned = note + cosign(WIT, NAME, note, 100)
    assert cosigners(cosigned, [me], not_after=100) == {me.vkey: 100}
    assert cosigners(cosigned, [me], not_after=99) == {}


def test_a_cosignature_made_now_is_0_seconds_old() -> None:
    me = witness_key(WIT, NAME)
    signed = [_opened(7), _opened(5, (WIT, NAME, 1_000))]
    got = witnessed(signed, [me], 1, now=1_000, max_age_s=0)
    assert got.ok and (got.newer, got.age_s) == (1, 0)
    assert not witnessed(signed, [me], 1, now=1_001, max_age_s=0).ok


def test_nothing_witnessed_is_exactly_not_ok_no_checkpoint_no_cosigners_age_0() -> None:
    me = witness_key(WIT, NAME)
    got = witnessed([_opened(7), _opened(5)], [me], 1, now=1_000, max_age_s=10**9)
    assert got == Witnessed(False, None, {}, 2, 0)
    assert got.ok is False


# -- the decision's kinds and messages, word for word -------------------------------------


def _short(leaves: list[bytes]) -> str:
    return f"size {len(leaves)} (root {root_of(leaves).hex()[:16]}\u2026)"


def test_an_unknown_origin_is_named_cut_at_100_characters() -> None:
    origin = "o" * 150
    d = decide(None, f"{origin}\n5\n{_b64(bytes(32))}\ntime 7\n\n", KEYS, 0, [])
    assert (d.kind, d.checkpoint) == (UNKNOWN_ORIGIN, None)
    assert d.message == f"no log key is trusted for origin {'o' * 100!r}"


def test_signature_refusals_say_what_was_wrong() -> None:
    nine = _leaves(9)
    prefix = "the checkpoint's signature does not check out: "
    forged = _note(nine, key=Ed25519PrivateKey.generate())
    d = decide(None, forged, KEYS, 0, [])
    assert (d.kind, d.checkpoint) == (SIGNATURE, None)
    assert d.message == prefix + "no signature by the registry's key on the checkpoint"
    tampered = _note(nine).replace(_b64(root_of(nine)), _b64(bytes(32)))
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    unusable = bytes(31)
    with pytest.raises(ValueError) as exc:
        Ed25519PublicKey.from_public_bytes(unusable)
    not_usable = f"a trusted log key is not usable: {exc.value}"
    assert decide(None, _note(nine), {ORIGIN: [unusable]}, 0, []).message == prefix + not_usable
    # a signature by a trusted key that does not verify is named, whichever key came first
    for keys in ([LOG_PUB], [LOG_PUB, other], [other, LOG_PUB], [unusable, LOG_PUB]):
        d = decide(None, tampered, {ORIGIN: keys}, 0, [])
        assert d.kind == SIGNATURE
        assert d.message == prefix + "the checkpoint's signature does not verify"
    # a key that is not usable is named over another key's missing signature
    d = decide(None, forged, {ORIGIN: [unusable, other]}, 0, [])
    assert d.message == prefix + not_usable


def test_the_first_and_a_repeated_cosignature_carry_the_checkpoint_and_say_so() -> None:
    five = _leaves(5)
    d = decide(None, _note(five), KEYS, 0, [])
    assert d.ok and d.message == f"{_short(five)}: the first checkpoint this witness cosigns"
    again = decide(_last(five), _note(five), KEYS, 5, [])
    assert again.kind == COSIGN
    assert again.message == f"{_short(five)}: the checkpoint this witness cosigned before"
    assert again.checkpoint == open_checkpoint(_note(five), ORIGIN, LOG_PUB)
    nine = _leaves(9)
    d = decide(_last(five), _note(nine), KEYS, 5, _proof(nine, 5))
    assert d.message == f"{_short(nine)} extends the cosigned size 5 (consistency proof)"


def test_a_rollback_names_both_checkpoints() -> None:
    nine, five = _leaves(9), _leaves(5)
    d = decide(_last(nine), _note(five), KEYS, 9, [])
    assert d.kind == ROLLBACK and d.checkpoint is not None
    assert d.message == (
        f"the log signed {_short(five)}, smaller than the {_short(nine)} this witness "
        "cosigned: a rollback of history"
    )


def test_a_fork_names_the_cosigned_and_the_new_checkpoint() -> None:
    five, fork = _leaves(5), _leaves(9, fork_at=3)
    d = decide(_last(five), _note(fork), KEYS, 5, _proof(fork, 5))
    assert d.message == (
        f"the log's consistency proof from the cosigned {_short(five)} to {_short(fork)} "
        "does not verify: not one history (a fork, or history rewritten)"
    )


def test_an_old_size_below_0_or_above_the_new_size_is_malformed_not_stale() -> None:
    """c2sp tlog-witness: an old size above the checkpoint's is a 400, not a 409."""
    five, nine = _leaves(5), _leaves(9)
    for last, old in ((None, -1), (_last(five), -1), (None, 10), (_last(five), 10)):
        d = decide(last, _note(nine), KEYS, old, [])
        assert d.kind == MALFORMED and d.checkpoint is not None
        assert d.message == f"old size {old} and a proof of 0 hashes for {_short(nine)}"
    d = decide(None, _note(nine), KEYS, 0, [bytes(32)])
    assert (d.kind, d.message) == (MALFORMED, "a consistency proof from the empty tree is empty")


def test_a_checkpoint_of_size_0_must_carry_the_empty_trees_root() -> None:
    def empty(root: bytes) -> str:
        return sign_checkpoint(LOG, LOG_PUB, ORIGIN, 0, root, 7).note

    d = decide(None, empty(bytes(32)), KEYS, 0, [])
    assert (d.kind, d.message) == (
        SPLIT_VIEW,
        "a checkpoint of size 0 without the empty tree's root",
    )
    assert d.checkpoint is not None and d.checkpoint.tree_size == 0
    assert decide(None, empty(EMPTY_ROOT), KEYS, 0, []).kind == COSIGN
