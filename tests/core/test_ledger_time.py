"""Key validity windows and time bounds of ``ledger verify`` (``core/ledger_time.py``), and
the auditor holding a published ledger to them (found 2026-12-05: a checkpoint signed by
any published key, a rotated-out one included, at any time, and entries dated after the
checkpoint covering them, passed)."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.ledger_audit import Auditor
from LLM_Mesh.core.ledger_entry import (
    ENTRY_FIELDS,
    GENESIS_PREV,
    MINT,
    Transfer,
    make_entry,
    pseudonym,
)
from LLM_Mesh.core.ledger_time import (
    CLOCK_SKEW_S,
    ROTATION_GRACE_S,
    EntryBounds,
    KeyWindows,
    ahead_problem,
    when,
)
from LLM_Mesh.core.merkle import root_of

ORIGIN = "test.local/ledger"
S = 1_000_000  # µs a second
T0 = 1_800_000_000  # seconds: the first key's introduction
ROTATED = T0 + 86_400  # the second key's introduction (the rotation away from the first)


def test_a_key_signs_from_its_introduction_until_the_rotation_away_from_it() -> None:
    w = KeyWindows({"old": T0, "new": ROTATED})
    assert w.problem("old", T0 * S) is None
    assert w.problem("old", (ROTATED + ROTATION_GRACE_S) * S) is None  # a rolling restart
    late = w.problem("old", (ROTATED + ROTATION_GRACE_S + 1) * S)
    assert late is not None and "rotated out" in late
    assert when((ROTATED + ROTATION_GRACE_S + 1) * S) in late and when(ROTATED * S) in late
    assert "key new introduced" in late
    assert w.problem("new", (ROTATED + 10 * 86_400) * S) is None  # the current key: no end
    early = w.problem("new", (ROTATED - ROTATION_GRACE_S - 1) * S)
    assert early is not None and "before its key new was introduced" in early
    assert w.problem("new", (ROTATED - ROTATION_GRACE_S) * S) is None


def test_a_key_without_a_published_time_cannot_be_told_and_an_unpublished_one_is_not_judged() -> (
    None
):
    w = KeyWindows({"old": None, "new": ROTATED})
    said = w.problem("old", T0 * S)
    assert said is not None and "no `created` time" in said
    assert w.problem("pinned-elsewhere", T0 * S) is None  # --key: the user's own pin


def test_ahead_of_the_verifiers_clock() -> None:
    now = T0 * S
    assert ahead_problem(now + CLOCK_SKEW_S * S, now) is None
    said = ahead_problem(now + (CLOCK_SKEW_S + 1) * S, now)
    assert said is not None and f"{CLOCK_SKEW_S + 1} s ahead" in said
    assert ahead_problem(now + 10**15, None) is None  # no clock given: not checked


def test_an_entry_is_bounded_by_the_earliest_checkpoint_covering_it() -> None:
    skew = CLOCK_SKEW_S * S
    b = EntryBounds({2: 50 * S, 4: 40 * S, 6: 90 * S}, now_us=1_000 * S)
    assert b.at(0) == (40 * S + skew, 4, 2)  # covered by 2, 4 and 6: the earliest time
    assert b.at(3) == (40 * S + skew, 4, 4)
    assert b.at(5) == (90 * S + skew, 6, 6)
    assert b.at(6)[:2] == (1_000 * S + skew, 0)  # no checkpoint covers it yet: the clock
    assert EntryBounds({}, None).at(0)[0] is None
    said = b.problem(5, 91 * S + skew, 90 * S + skew, 6)
    assert said is not None and "after the checkpoint at size 6" in said


# -- the auditor -------------------------------------------------------------------------


def _b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _ledger(times_s: list[int]) -> tuple[list[dict[str, object]], list[bytes]]:
    alice = pseudonym("user", "alice")
    out, leaves, prev = [], [], GENESIS_PREV
    for seq, t in enumerate(times_s):
        e, prev = make_entry(seq, t * S, Transfer("grant", MINT, alice, 10 + seq), prev)
        out.append(e.to_json())
        leaves.append(prev)
    return out, leaves


def _cp(key: Ed25519PrivateKey, leaves: list[bytes], size: int, t: int) -> dict[str, object]:
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    root = root_of(leaves[:size])
    cp = sign_checkpoint(key, pub, ORIGIN, size, root, t * S)
    return {"tree_size": size, "root_hash": root.hex(), "note": cp.note, "public_key": _b64(key)}


def _audit(cps: list[dict[str, object]], entries: list[dict[str, object]],
           created: dict[str, int | None], now_s: int) -> list[tuple[str, str]]:  # fmt: skip
    a = Auditor(cps, list(created), ORIGIN, created=created, now_us=now_s * S)
    for e in entries:
        a.entry(e)
    return [(f.kind, f.message) for f in a.finish().findings]


def _fast(cps: list[dict[str, object]], entries: list[dict[str, object]],
          created: dict[str, int | None], now_s: int) -> list[tuple[str, str]]:  # fmt: skip
    """The same through the rows path (the export's lines: the auditor's fast path)."""
    a = Auditor(cps, list(created), ORIGIN, created=created, now_us=now_s * S)
    a.rows([tuple(e[f] for f in ENTRY_FIELDS) for e in entries])
    return [(f.kind, f.message) for f in a.finish().findings]


OLD, NEW = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
CREATED: dict[str, int | None] = {_b64(OLD): T0, _b64(NEW): ROTATED}


def test_an_honest_ledger_through_a_rotation_passes() -> None:
    entries, leaves = _ledger([T0 + 1, T0 + 2, ROTATED + 5, ROTATED + 6])
    cps = [_cp(OLD, leaves, 2, T0 + 3), _cp(NEW, leaves, 4, ROTATED + 7)]
    for check in (_audit, _fast):
        assert check(cps, entries, CREATED, ROTATED + 8) == []


def test_a_checkpoint_by_the_rotated_out_key_dated_after_the_rotation_fails() -> None:
    entries, leaves = _ledger([T0 + 1, T0 + 2, ROTATED + 5, ROTATED + 6])
    late = ROTATED + 3_600
    cps = [_cp(OLD, leaves, 2, T0 + 3), _cp(OLD, leaves, 4, late)]
    for check in (_audit, _fast):
        found = check(cps, entries, CREATED, late + 1)
        assert [k for k, _ in found] == ["key"], found
        assert "checkpoint at size 4" in found[0][1]
        assert when(late * S) in found[0][1] and when(ROTATED * S) in found[0][1]


def test_an_entry_dated_after_its_covering_checkpoint_fails() -> None:
    later = T0 + 3 + CLOCK_SKEW_S + 1
    entries, leaves = _ledger([T0 + 1, later, later + 1])
    cps = [_cp(OLD, leaves, 2, T0 + 3), _cp(OLD, leaves, 3, later + 2)]
    for check in (_audit, _fast):
        found = check(cps, entries, CREATED, later + 3)
        assert [k for k, _ in found] == ["time"], found
        assert "entry 1 is dated" in found[0][1] and "checkpoint at size 2" in found[0][1]


def test_a_checkpoint_or_an_uncovered_entry_in_the_verifiers_future_fails() -> None:
    now = T0 + 10
    ahead = now + CLOCK_SKEW_S + 60
    entries, leaves = _ledger([T0 + 1, T0 + 2, ahead])
    cps = [_cp(OLD, leaves, 2, ahead)]
    for check in (_audit, _fast):
        found = check(cps, entries, {_b64(OLD): T0}, now)
        assert [k for k, _ in found] == ["time", "time"], found
        assert (
            "checkpoint at size 2" in found[0][1]
            and "ahead of this verifier's clock" in found[0][1]
        )
        assert "entry 2 is dated" in found[1][1]


# (mutation testing, mut31b)


def test_a_time_is_said_in_utc_whatever_tz_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a local time would show
    time.tzset()
    try:
        assert when(1_700_000_000_123_456) == "2023-11-14T22:13:20Z"
        assert when(10**30) == f"{10**30} µs"  # past any calendar: the number itself
    finally:
        monkeypatch.undo()  # TZ as it was, then read again
        time.tzset()


def test_a_time_ahead_is_said_with_its_seconds_ahead() -> None:
    now = 1_700_000_000_000_000
    ahead = now + (CLOCK_SKEW_S + 1) * 1_000_000
    assert ahead_problem(ahead, now) == (
        "dated 2023-11-14T22:18:21Z, 301 s ahead of this verifier's clock "
        "(2023-11-14T22:13:20Z; skew 300 s)"
    )
