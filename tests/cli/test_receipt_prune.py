"""The kept receipts' folder of a user who never runs ``ledger statement`` (found
2026-12-05, ``money30``: it grew without bound, unsaid): ``ask`` says so once a day
(``receipt_files.kept_note``), and ``llm-mesh receipt prune --older-than DAYS`` removes
what the user chooses, by the receipts' signed time, saying how many. Nothing is removed
unasked. The decisions: ``tests/core/test_receipt_keep.py``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import receipt_prune
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.receipt_keep import NOTE_AGE_S
from LLM_Mesh.receipt_files import LOOKED, keep_for_key, kept_note, key_folder, save_receipt
from tests.cli.test_ask_save import _ask_as, _kept, _new_user, paid  # noqa: F401 (a fixture)
from tests.cli.test_ledger_statement import Paid
from tests.core.test_receipt_verify import make_receipt

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


def _prune(home: Path, *args: str, key: str = KEY) -> tuple[int, str]:
    env = {"LLM_MESH_HOME": str(home), "LLM_MESH_API_KEY": key, "COLUMNS": "300"}
    res = runner.invoke(app, ["receipt", "prune", *args], env=env)
    return res.exit_code, " ".join(res.output.split())


def test_prune_removes_only_receipts_older_than_the_days_given_and_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    folder = _folder_of_receipts(tmp_path)
    code, said = _prune(tmp_path, "--older-than", "11")
    assert code == 0, said
    assert f"removed 0 kept receipts older than 11 days from {folder}; 3 kept, 1 file " in said
    code, said = _prune(tmp_path, "--older-than", "7", "--dry-run")
    assert code == 0 and f"would remove 2 kept receipts older than 7 days from {folder}" in said
    assert len(list(folder.iterdir())) == 4
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert (f"removed 2 kept receipts older than 7 days from {folder}; 1 kept, 1 file holding "
            "no receipt left alone") in said  # fmt: skip
    assert "no clean `llm-mesh ledger statement` of this key is remembered" in said
    assert sorted(p.name for p in folder.iterdir()) == ["later.json", "notes.txt"]


def test_prune_takes_a_key_or_all_keys_and_never_less_than_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipt_prune, "_now_ms", lambda: SIGNED_MS + 10 * DAY_MS)
    one, two = _folder_of_receipts(tmp_path), _folder_of_receipts(tmp_path, KEY + "2")
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
    code, said = _prune(tmp_path, "--older-than", "7")
    assert code == 0, said
    assert f"removed 2 kept receipts older than 7 days from {folder}; 1 kept, 1 file" in said


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
