"""``llm-mesh receipt verify --ledger`` of a version-2 receipt (it signs no amounts) whose
request the registry's ledger charges.

Found 2026-12-07 (money42): it said "the receipt signs no amounts (not settled, or version 1
or 2): nothing to compare", exit 0, as if nothing had been charged, while the ledger listed
100 µNT taken under it. Now it names those entries and their sum as charges that CANNOT BE
CHECKED (a note, exit 0: such receipts are old data an honest registry made; nothing
signed to disagree with). The registry's words in it are made safe for the terminal."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.core.receipt_verify_fixtures import REGISTRY_KEY, answer, make_receipt

KEY = base64.b64encode(REGISTRY_KEY.public_key().public_bytes_raw()).decode()
USER = "user:" + "a" * 24


def _verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, Any]]
) -> tuple[int, str]:
    receipt = make_receipt(version=2)
    for e in entries:
        e.setdefault("receipt_hash", receipt["receipt_hash"])
    monkeypatch.setattr(
        "LLM_Mesh.cli.receipt_commands.request_entries",
        lambda urls, *a, **kw: ("http://registry.test", entries),
    )
    res = CliRunner().invoke(
        app, ["receipt", "verify", "-", "--key", KEY, "--ledger"], input=json.dumps(answer(receipt)),
        env={"LLM_MESH_HOME": str(tmp_path / "user"), "COLUMNS": "300",
             "LLM_MESH_REGISTRY_URL": "http://registry.test"},
    )  # fmt: skip
    return res.exit_code, res.output


def test_a_charge_under_a_version_2_receipt_is_said_not_checkable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debits = [
        {"seq": 3, "kind": "settle", "from": USER, "to": "operator:x", "amount": 95},
        {"seq": 4, "kind": "fee", "from": USER, "to": "network", "amount": 5},
    ]
    code, out = _verify(tmp_path, monkeypatch, debits)
    said = " ".join(out.split())
    assert code == 0, said
    assert "version 2: no amounts signed" in said, said
    assert (
        "ledger: CANNOT BE CHECKED: entries 3 (settle, 95 µNT), 4 (fee, 5 µNT) take 100 µNT "
        "for this request under a version-2 receipt, which signs no amounts"
    ) in said, said
    assert "nothing to compare" not in said, said  # before the fix: only this
    assert "not proven: that the registry listed all" in said, said


def test_no_charge_under_it_is_still_nothing_to_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _verify(tmp_path, monkeypatch, [])
    said = " ".join(out.split())
    assert code == 0 and "nothing to compare" in said and "CANNOT" not in said, said


def test_the_registrys_words_in_the_note_are_made_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry's entry whose amount is a string with a terminal escape and markup: shown
    escaped, never sent to the terminal as is (nor read as rich markup)."""
    hostile = {"seq": 3, "kind": "settle", "from": USER, "to": "x", "amount": "\x1b[2J[red]9"}
    code, out = _verify(tmp_path, monkeypatch, [hostile])
    assert code == 0 and "CANNOT BE CHECKED" in out, out
    assert "\x1b" not in out, repr(out)
