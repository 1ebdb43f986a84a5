"""``benchmarks/probe_account_instructions.py`` runs on this checkout (docs/benchmarks.md
cites its command): its child in each mode with a few calls, without valgrind (the
instruction mode's two runs are the same child under it), and the reading of callgrind's
total."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "benchmarks" / "probe_account_instructions.py"
_spec = importlib.util.spec_from_file_location("probe_account_instructions", _PATH)
assert _spec is not None and _spec.loader is not None
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_each_mode_makes_the_same_receipt_and_says_its_figure() -> None:
    tree = str(ROOT)
    run, skip = probe.child(tree, "run", "3"), probe.child(tree, "skip", "3")
    sha, profile = probe.child(tree, "profile", "3")
    timed = probe.child(tree, "time", "3", "2")
    assert len(sha) == 64 and run == skip == [sha] and timed[0] == sha
    calls = json.loads(profile)
    assert calls["registry/account.py:make_receipt"] == 1  # a call of it, per call
    assert calls["core/receipt.py:countersign"] == 1
    assert float(timed[1]) > 0


def test_callgrinds_total_is_read_from_its_summary() -> None:
    text = "version: 1\ncmd: python\nevents: Ir\nfl=x\n0 5\nsummary: 1234567\ntotals: 1234567\n"
    assert probe.callgrind_total(text) == 1234567
    assert probe.callgrind_total("events: Ir\ntotals: 42\n") == 42
    with pytest.raises(ValueError, match="no summary"):
        probe.callgrind_total("events: Ir\n")
