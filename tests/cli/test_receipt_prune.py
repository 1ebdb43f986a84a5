"""The kept receipts' folder of a user who never runs ``ledger statement`` (found
2026-12-05, ``money30``: it grew without bound, unsaid): ``ask`` says so once a day
(``receipt_files.kept_note``), and ``llm-mesh receipt prune --older-than DAYS`` removes
what the user chooses, by the receipts' signed time, saying how many. Nothing is removed
unasked. Since 2026-12-05 (``receipts31``) prune removes only the receipts a clean
statement covered (``.covered.json`` in the folder, written by the statement): before, it
removed receipts whose debits no statement had checked, and the next one named them
``NO RECEIPT``. The decisions: ``tests/core/test_receipt_keep.py``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import receipt_prune
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.ledger_entry import Transfer
from LLM_Mesh.core.receipt_keep import NOTE_AGE_S
from LLM_Mesh.core.receipt_verify import find_receipt, parse_receipt
from LLM_Mesh.receipt_files import (
    COVERED,
    LOOKED,
    keep_for_key,
    kept_note,
    key_folder,
    save_covered,
    save_receipt,
)
from LLM_Mesh.registry.settlement import user_account
from tests.cli.test_ask_save import (  # noqa: F401 (a fixture)
    _ask_as,
    _kept,
    _new_account,
    _new_user,
    _run,
    paid,
)
from tests.cli.test_ledger_statement import Paid
from tests.core.receipt_verify_fixtures import make_receipt

runner = CliRunner()
KEY = "lmk_" + "k" * 44
DAY_MS = 86_400_000
SIGNED_MS = 1_700_000_000_000  # make_receipt's clock


def _old_name(folder: Path, days: int) -> Path:
    """A kept file's name dated ``days`` ago (``save_receipt``'s form)."""
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - days * 86_400))
    return folder / f"receipt-{when}-0a1b2c3d4e5f.json"


# --- ask tells, once a day ---------------------------------------------------------------


def test_a_folder_with_a_receipt_two_windows_old_is_said_once_a_day(tmp_path: Path) -> None:
    folder = tmp_path / "receipts" / "tag"
    save_receipt(folder, {"mesh": {"receipt": {}}})
    assert kept_note(folder) is None  # a fresh folder: nothing to say, looked at
    assert (folder.parent / (LOOKED + "tag")).exists() and len(list(folder.iterdir())) == 1
    _old_name(folder, 75).write_text("{}")
    now = time.time()
    assert kept_note(folder, now) is None  # looked at today already
    line = kept_note(folder, now + 86_400)
    assert line is not None and line.startswith(
        f"note: {folder} keeps the oldest 76 days old: "
    )  # a day later
    assert "run `llm-mesh ledger statement`" in line and "receipt prune --older-than DAYS" in line
    assert kept_note(folder, now + 86_400 + 60) is None  # once a day
    assert len(list(folder.iterdir())) == 2  # nothing removed


def test_a_folder_it_cannot_read_is_not_an_error(tmp_path: Path) -> None:
    assert kept_note(tmp_path / "none") is None


def test_the_seed_api_logs_the_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = key_folder(tmp_path, KEY)
    folder.mkdir(parents=True)
    _old_name(folder, NOTE_AGE_S // 86_400 + 1).write_text("{}")
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.receipt_files"):
        assert keep_for_key(tmp_path, KEY, {"mesh": {"receipt": {}}}) is not None
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("note: ")]
    assert len(notes) == 1 and "the oldest 61 days old" in notes[0], notes


def test_a_keyed_ask_says_the_folder_is_past_its_bound_once(paid: Paid) -> None:  # noqa: F811
    """A user who never ran a statement: before, not a word, however old the folder."""
    key = _new_user(paid, "nora")
    folder = key_folder(paid.home / "user", key)
    folder.mkdir(parents=True)
    old = _old_name(folder, 90)
    old.write_text("{}")
    code, out, err = _ask_as(paid, key, "x")
    assert code == 0, out + err
    notes = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 1, err
    assert notes[0].startswith(f"note: {folder} keeps the oldest 90 days old: run `llm-mesh "
                               "ledger statement`"), notes  # fmt: skip
    code, out, err = _ask_as(paid, key, "y")
    assert code == 0 and not [ln for ln in err.splitlines() if ln.startswith("note: ")], err
    assert old.exists() and len(_kept(paid, key)) == 3  # told, nothing removed


# --- receipt prune ------------------------------------------------------------------------


def _folder_of_receipts(home: Path, key: str = KEY) -> Path:
    """Two receipts signed at SIGNED_MS, one 5 days later (its time moved: prune reads the
    time, it verifies nothing: the user's own folder), a file holding none."""
    folder = key_folder(home, key)
    for i in range(2):
        save_receipt(folder, {"mesh": {"receipt": make_receipt(request_id=f"req-{i}")}})
    later = make_receipt(request_id="req-later")
    later["time_ms"] = SIGNED_MS + 5 * DAY_MS
    (folder / "later.json").write_text(json.dumps(later))
    (folder / "notes.txt").write_text("not a receipt")
    return folder


def _cover(folder: Path, *names: str) -> None:
    """Record, as a clean statement does, the receipts of the files ``names`` (all the
    folder's receipt files when none are named) as covered."""
    hashes = set()
    for f in folder.iterdir():
        if f.name.startswith(".") or (names and f.name not in names):
            continue
        try:
            hashes.add(parse_receipt(find_receipt(f.read_text()).receipt).receipt_hash)
        except ValueError:
            continue
    save_covered(folder, hashes, through=10, checkpoint_ms=SIGNED_MS + 20 * DAY_MS)


def _prune(home: Path, *args: str, key: str = KEY) -> tuple[int, str]:
    env = {"LLM_MESH_HOME": str(home), "LLM_MESH_API_KEY": key, "COLUMNS": "300"}
    res = runner.invoke(app, ["receipt", "prune", *args], env=env)
    return res.exit_code, " ".join(res.output.split())


def test_prune_removes_only_receipts_older_than_the_days_given_and_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    _cover(folder)
    code, said = _prune(tmp_path, "--older-than", "11")
    assert code == 0, said
    assert f"removed 0 kept receipts older than 11 days from {folder}; 3 kept, 1 file " in said
    code, said = _prune(tmp_path, "--older-than", "7", "--dry-run")
    assert code == 0 and f"would remove 2 kept receipts older than 7 days from {folder}" in said
    assert len(list(folder.iterdir())) == 5  # and the record
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert (f"removed 2 kept receipts older than 7 days from {folder}; 1 kept, 1 file holding "
            "no receipt left alone") in said  # fmt: skip
    assert "no clean `llm-mesh ledger statement` of this key is remembered" in said
    assert sorted(p.name for p in folder.iterdir()) == [COVERED, "later.json", "notes.txt"]


def test_prune_takes_a_key_or_all_keys_and_never_less_than_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    one, two = _folder_of_receipts(tmp_path), _folder_of_receipts(tmp_path, KEY + "2")
    _cover(one), _cover(two)
    code, said = _prune(tmp_path, "--older-than", "7", key="")
    assert code == 1 and "error: no key: set LLM_MESH_API_KEY" in said, said
    code, said = _prune(tmp_path, "--older-than", "0")
    assert code == 2, said  # a typo's 0 removes nothing
    code, said = _prune(tmp_path, "--older-than", "7", "--all-keys", key="")
    assert code == 0, said
    for folder in (one, two):
        assert f"removed 2 kept receipts older than 7 days from {folder}" in said
    code, said = _prune(tmp_path / "elsewhere", "--older-than", "7")
    assert code == 0 and "no receipts kept in" in said, said


def test_prune_reads_a_folder_past_the_statements_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder that most needs pruning is the one the statement refuses to read (past
    100,000 files, or 1,000 holding no receipt): prune still reads it, file by file."""
    from LLM_Mesh.cli import ledger_statement

    monkeypatch.setattr(ledger_statement, "MAX_RECEIPT_FILES", 2)
    monkeypatch.setattr(ledger_statement, "MAX_SKIPPED", 0)
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    _cover(folder)
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert f"removed 2 kept receipts older than 7 days from {folder}; 1 kept, 1 file" in said


# --- only what a clean statement covered (receipts31) -------------------------------------


def test_prune_keeps_receipts_no_clean_statement_covered_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the two old receipts were removed, though no statement had checked their
    debits (the next one: NO RECEIPT)."""
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert f"removed 0 kept receipts older than 7 days from {folder}; 3 kept" in said
    assert ("2 of them older than 7 days, which no clean statement covered yet (none recorded in "
            f"{folder})") in said  # fmt: skip
    assert "run `llm-mesh ledger statement`" in said and "--include-uncovered" in said
    assert len(list(folder.iterdir())) == 4
    _cover(folder, "later.json")  # a record covering the new one only
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0 and "removed 0 kept receipts" in said and "2 of them older" in said, said
    code, said = _prune(tmp_path, "--older-than", "7", "--include-uncovered", "--dry-run")
    assert code == 0 and "would remove 2 kept receipts" in said, said
    code, said = _prune(tmp_path, "--older-than", "7", "--include-uncovered")
    assert code == 0, said
    assert f"removed 2 kept receipts older than 7 days from {folder}; 1 kept" in said
    assert (
        "2 were removed though no clean statement covered them: their charges are NO RECEIPT"
        in said
    )
    assert sorted(p.name for p in folder.iterdir()) == [COVERED, "later.json", "notes.txt"]


def test_prune_removes_only_the_covered_one_of_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    first = sorted(p.name for p in folder.glob("receipt-*"))[0]
    _cover(folder, first)
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert f"removed 1 kept receipt older than 7 days from {folder}; 2 kept" in said
    assert "1 of them older than 7 days, which no clean statement covered yet" in said
    assert not (folder / first).exists() and len(list(folder.glob("receipt-*"))) == 1


@pytest.mark.parametrize("bad", ["junk", "empty", "huge", "folder", "other-format"])
def test_a_bad_coverage_record_covers_nothing_and_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """The record is the user's own file: a torn, hand-edited or odd one covers nothing
    (never a traceback, never a receipt removed on its word)."""
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    record = folder / COVERED
    if bad == "junk":
        record.write_text('{"format": "llm-mesh covered receipts v1", "receipts": ["x"')
    elif bad == "empty":
        record.write_text("")
    elif bad == "huge":
        with record.open("wb") as f:
            f.truncate(1 << 30)  # sparse
    elif bad == "folder":
        record.mkdir()
    else:
        record.write_text(json.dumps({"format": "something else", "receipts": []}))
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert f"{record}: unreadable" in said and "taken as covering nothing" in said, said
    assert "removed 0 kept receipts" in said and "2 of them older than 7 days" in said
    assert len(list(folder.glob("receipt-*"))) == 2


def test_prune_removes_what_a_clean_statement_covered_and_keeps_what_came_after(
    paid: Paid,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real registry, settlement and a SIMULATED sim node: a clean statement records
    the receipts it checked; one asked after it is kept by prune; the next statement is
    clean (no NO RECEIPT); a statement with findings clears the record."""
    key, acct = _new_account(paid, "ulla")
    for _ in range(2):
        assert _ask_as(paid, key, "x")[0] == 0
    paid.settle()
    folder = key_folder(paid.home / "user", key)
    code, out, err = _run(paid, ["ledger", "statement", "--receipts", str(folder)], key)
    assert code == 0 and not (folder / COVERED).exists(), out + err  # not the folder ask fills
    code, out, err = _run(paid, ["ledger", "statement"], key)
    assert code == 0, out + err
    assert len(json.loads((folder / COVERED).read_text())["receipts"]) == 2
    assert _ask_as(paid, key, "after")[0] == 0  # settled after the statement ran
    paid.settle()
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: int(time.time() * 1000) + 2 * DAY_MS)
    code, said = _prune(paid.home / "user", "--older-than", "1", key=key)
    assert code == 0, said
    assert f"removed 2 kept receipts older than 1 day from {folder}; 1 kept" in said
    assert "1 of them older than 1 day, which no clean statement covered yet" in said
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 0 and "NO RECEIPT" not in said, said  # the removed ones were checked
    assert "checked by an earlier statement" in said
    assert len(json.loads((folder / COVERED).read_text())["receipts"]) == 1
    paid.write(Transfer("settle", acct, user_account("someone"), 500, "req-late"))
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 1 and "NO RECEIPT" in said, said
    assert not (folder / COVERED).exists()  # findings: nothing recorded as covered
    assert "`receipt prune` keeps every receipt" in said
    code, said = _prune(paid.home / "user", "--older-than", "1", key=key)
    assert code == 0 and "removed 0 kept receipts" in said and "(none recorded" in said, said
    assert len(_kept(paid, key)) == 1


def test_a_clean_statement_that_cannot_write_its_record_says_so_and_passes(
    paid: Paid,  # noqa: F811
) -> None:
    key = _new_user(paid, "vera")
    assert _ask_as(paid, key, "x")[0] == 0
    paid.settle()
    folder = key_folder(paid.home / "user", key)
    (folder / COVERED).mkdir()  # where the record goes
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 0, said
    assert "what this statement covered was not recorded in" in said, said
    assert "`receipt prune` keeps those receipts" in said and (folder / COVERED).is_dir()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [COVERED]  # no tmp


def test_one_day_is_said_in_the_singular_and_no_folder_at_all_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (newuser31): ``--older-than 1`` said "older than 1 days", and
    ``--all-keys`` in a home with no receipts/ said nothing at all (exit 0, no line)."""
    monkeypatch.setenv("LLM_MESH_HOME", str(tmp_path))
    r = runner.invoke(app, ["receipt", "prune", "--older-than", "1", "--all-keys"])
    assert r.exit_code == 0 and f"no receipts kept in {tmp_path / 'receipts'}" in r.output, r.output
    folder = key_folder(tmp_path, KEY)
    folder.mkdir(parents=True)
    r = runner.invoke(app, ["receipt", "prune", "--older-than", "1", "--api-key", KEY])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "older than 1 day from" in said, said
