"""``witness/state.read_logs``: the one reader of the witness's JSON files
(``witness_state.json``, ``witness_keys.json``): no file is nothing yet; anything but the
witness's own format is an error that names the file and why, for both files alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from LLM_Mesh.witness.log_keys import KEYS_FILE, KEYS_FORMAT, load_log_keys
from LLM_Mesh.witness.state import STATE_FILE, STATE_FORMAT, load_state, read_logs

FMT = "llm-mesh/test/v1"


def test_no_file_is_no_logs_yet(tmp_path: Path) -> None:
    assert read_logs(tmp_path / "absent.json", FMT) == {}
    assert load_state(tmp_path / STATE_FILE) == {}
    assert load_log_keys(tmp_path / KEYS_FILE, "origin") is None


def test_the_logs_of_the_format_asked_are_read(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text('{"format": "llm-mesh/test/v1", "logs": {"o": [1]}}')
    assert read_logs(path, FMT) == {"o": [1]}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "Expecting property name"),
        ("[1]", "not a JSON object"),
        ('{"format": "other", "logs": {}}', "format 'other'"),
        ('{"logs": {}}', "format None"),
        ('{"format": "llm-mesh/test/v1"}', "no logs object"),
        ('{"format": "llm-mesh/test/v1", "logs": []}', "no logs object"),
    ],
)
def test_anything_else_is_not_what_the_witness_wrote(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not what the witness wrote ({why}")):
        read_logs(path, FMT)


def test_each_file_refuses_the_others_format(tmp_path: Path) -> None:
    keys, state = tmp_path / KEYS_FILE, tmp_path / STATE_FILE
    keys.write_text(f'{{"format": "{STATE_FORMAT}", "logs": {{}}}}')
    state.write_text(f'{{"format": "{KEYS_FORMAT}", "logs": {{}}}}')
    with pytest.raises(ValueError, match=re.escape(f"({'format ' + repr(STATE_FORMAT)})")):
        load_log_keys(keys, "origin")
    with pytest.raises(ValueError, match=re.escape(f"({'format ' + repr(KEYS_FORMAT)})")):
        load_state(state)


def test_a_state_entry_not_the_witnesss_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    path.write_text(f'{{"format": "{STATE_FORMAT}", "logs": {{"o": {{"size": 1}}}}}}')
    with pytest.raises(ValueError, match=re.escape(f"{path} is not what the witness wrote")):
        load_state(path)
