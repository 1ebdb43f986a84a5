"""The earnings tables: integers of micro-NetworkTokens, every row, and no zeros for no answer."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console

from LLM_Mesh.cli.earnings_render import earnings_tables, node_earnings_view, summary_line

REPORT: dict[str, Any] = {
    "object": "earnings",
    "operator": "alice",
    "account": "operator:0123456789abcdef01234567",
    "unit": "micro-NetworkToken",
    "since": "2026-11-02",
    "until": "2026-12-01",
    "node": None,
    "nodes": ["node-a", "node-b"],
    "balance": 987654,
    "totals": {"requests": 3, "earned": 4321, "fees": 79, "rewards": 150000, "total": 154321},
    "by_day": [
        {"day": "2026-11-30", "requests": 1, "earned": 950, "fees": 50, "rewards": 0, "total": 950},
        {
            "day": "2026-12-01",
            "requests": 2,
            "earned": 3371,
            "fees": 29,
            "rewards": 150000,
            "total": 153371,
        },
    ],
    "by_model": [{"model": "gemma-3-270m", "requests": 3, "earned": 4321, "fees": 79}],
    "by_node": [
        {
            "node_id": "node-a",
            "requests": 3,
            "earned": 4321,
            "fees": 79,
            "rewards": 100000,
            "total": 104321,
            "healthy_s": 3600,
        },
        {
            "node_id": "node-b",
            "requests": 0,
            "earned": 0,
            "fees": 0,
            "rewards": 50000,
            "total": 50000,
            "healthy_s": 1830,
        },
    ],
}


def _text(*parts: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    for p in parts:
        console.print(p)
    return console.export_text()


def test_summary_line_says_whose_when_and_how_much() -> None:
    text = _text(summary_line(REPORT))
    for part in ("alice", REPORT["account"], "2026-11-02 to 2026-12-01", "154,321 µNT", "4,321",
                 "3 requests", "79 in fees", "150,000 uptime rewards", "balance now 987,654 µNT"):  # fmt: skip
        assert part in text, part


def test_summary_line_names_the_old_account_it_adds_up() -> None:
    """An operator paid before keyed accounts: ``llm-mesh earnings`` says its figures add
    up its keyed account and its old one (the balance stays there, not moved)."""
    assert "before keyed" not in _text(summary_line(REPORT))
    text = _text(summary_line({**REPORT, "old_account": "operator:0123456789abcdef01234567"}))
    assert "and operator:0123456789abcdef01234567, its account before keyed accounts" in text


def test_tables_have_every_row_as_integers() -> None:
    tables = earnings_tables(REPORT)
    assert [t.title for t in tables] == ["Per day (UTC)", "Per model (requests)", "Per node"]
    text = _text(*tables)
    for part in ("2026-11-30", "153,371", "gemma-3-270m", "node-a", "104,321", "1 h 00 min",
                 "node-b", "30 min 30 s"):  # fmt: skip
        assert part in text, part
    assert re.search(r"\d\.\d", text) is None  # no amount printed as a decimal


def test_an_empty_report_prints_no_tables() -> None:
    empty = {**REPORT, "by_day": [], "by_model": [], "by_node": []}
    assert earnings_tables(empty) == []


def test_node_view_shows_the_earnings_or_why_not() -> None:
    registered = {"registry": {"url": "http://r", "registered": True}}
    ok = _text(*node_earnings_view(registered, {**REPORT, "node": "node-a"}, None))
    assert "node node-a" in ok and "Per day" in ok and "Per node" not in ok
    down = _text(*node_earnings_view(registered, None, "the registry at http://r is unreachable"))
    assert "earnings unavailable" in down and "unreachable" in down
    assert "0 µNT" not in down and "µNT" not in down  # no zeros standing in for an answer
    alone = _text(*node_earnings_view({"registry": None}, None, None))
    assert "does not register" in alone


def test_held_earnings_are_said_only_when_there_are_some() -> None:
    assert "held" not in _text(summary_line(REPORT))
    held = {**REPORT, "held": 1900, "held_by_node": {"node-a": 1900}}
    text = _text(summary_line(held))
    assert "held 1,900 µNT (node-a: 1,900)" in text and "clears the node" in text
    view = _text(*node_earnings_view({"registry": "http://r"}, held, None))
    assert "held 1,900 µNT" in view  # what `llm-mesh node info` prints


def test_summary_line_says_one_request_in_the_singular() -> None:
    """Found 2026-12-04: ``node info`` after one request read "for 1 requests"."""
    one = {**REPORT, "totals": {**REPORT["totals"], "requests": 1}}
    text = _text(summary_line(one))
    assert "for 1 request " in text and "1 requests" not in text


def test_the_per_node_table_keeps_node_ids_whole_at_80_columns() -> None:
    """Found 2026-12-04: at 80 columns ``llm-mesh earnings`` folded a node id over three
    lines and cropped the table's right edge ("uptim", "72 h 00 mi")."""
    node = "node-srnaouytbovhdwycmru7ioondd"
    report = {
        **REPORT,
        "by_node": [{"node_id": node, "requests": 12345, "earned": 1234567, "rewards": 150000,
                     "total": 1384567, "healthy_s": 86400 * 3}],
    }  # fmt: skip
    for width in (80, 160):
        console = Console(width=width, record=True, color_system=None)
        for part in earnings_tables(report, width):
            console.print(part)
        out = console.export_text()
        assert node in out and "72 h 00 min" in out and "uptime rewarded" in out, out
        assert max(len(line.rstrip()) for line in out.splitlines()) <= width


def test_a_simulated_node_is_labelled_in_the_per_node_table() -> None:
    """Found 2026-12-05: ``llm-mesh earnings`` showed a sim node's row like a real one's
    (``GET /v1/earnings`` now says ``simulated`` per node)."""
    sim_id, real_id = "node-qdn7keidu36pioyyz46kbvbrdt", "node-vpnbxstgnxn5c4bkxd37kqugqg"
    sim = {**REPORT["by_node"][0], "node_id": sim_id, "simulated": True}
    real = {**REPORT["by_node"][1], "node_id": real_id, "simulated": False}
    for width in (80, 120, None):
        text = _text(*earnings_tables({**REPORT, "by_node": [sim, real]}, width))
        assert sim_id in text and real_id in text and text.count("(simulated now)") == 1, text
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if sim_id in line)
        assert any("(simulated now)" in line for line in lines[at : at + 2]), text


def test_simulated_model_rows_and_the_total_are_labelled() -> None:
    """Found 2026-12-05 (newuser31): a sim node's operator saw ``code-llama-7b`` in the per
    model table and the summary's total unlabelled, only the per node row said simulated
    (the dashboard labels all three). A model served only by sim nodes says so, one served
    by some says partly, and the summary names the simulated share."""
    by_model = [
        {"model": "code-llama-7b", "requests": 2, "earned": 300, "fees": 16, "simulated": "all"},
        {"model": "mistral-7b", "requests": 1, "earned": 20, "fees": 1, "simulated": "some"},
        {"model": "gemma-3-270m", "requests": 3, "earned": 40, "fees": 2, "simulated": None},
    ]
    report = {**REPORT, "by_model": by_model, "simulated_total": 320}
    for width in (80, 120, None):
        text = _text(*earnings_tables(report, width))
        lines = text.splitlines()
        for model, label in (("code-llama-7b", "(simulated now)"), ("mistral-7b", "(partly")):
            at = next(i for i, line in enumerate(lines) if model in line)
            assert any(label in line for line in lines[at : at + 2]), text
        at = next(i for i, line in enumerate(lines) if "gemma-3-270m" in line)
        assert "simulated" not in " ".join(lines[at : at + 2]), text
    assert "320 µNT of it by nodes simulated now" in " ".join(_text(summary_line(report)).split())
    assert "simulated" not in _text(summary_line({**REPORT, "simulated_total": 0}))
    assert "simulated" not in _text(summary_line(REPORT))


def test_the_simulated_label_says_now_not_when_it_was_earned() -> None:
    """Found 2026-12-07 (newuser43): one home's node earned uptime rewards on llama-cpp,
    then ran ``--engine sim``; ``llm-mesh earnings`` said the rewards came "from simulated
    nodes", though a node earns uptime only while it serves a real model. The registry
    labels by what each node runs now (it records no engine per request or period), and the
    words say so (failed before: "from simulated nodes", "(simulated)")."""
    switched = {**REPORT["by_node"][0], "node_id": "node-qdn7keidu36pioyyz46kbvbrdt",
                "requests": 0, "earned": 0, "rewards": 5000, "total": 5000,
                "simulated": True}  # fmt: skip
    report = {**REPORT, "by_node": [switched], "simulated_total": 5000}
    said = " ".join(_text(summary_line(report)).split())
    assert "5,000 µNT of it by nodes simulated now" in said, said
    assert "from simulated nodes" not in said
    text = _text(*earnings_tables(report, 120))
    assert "(simulated now)" in text and "(simulated)" not in text, text


def test_a_revoked_node_is_marked_in_the_per_node_table() -> None:
    """Found 2026-12-07 (newuser44): ``llm-mesh earnings``' "Per node" listed a node whose
    key the admin had revoked as any other (``GET /v1/earnings`` now says ``revoked`` per
    node); only ``true`` marks it (the registry's words: a string says nothing)."""
    gone_id, live_id = "node-qdn7keidu36pioyyz46kbvbrdt", "node-vpnbxstgnxn5c4bkxd37kqugqg"
    gone = {**REPORT["by_node"][0], "node_id": gone_id, "revoked": True, "simulated": True}
    live = {**REPORT["by_node"][1], "node_id": live_id, "revoked": "true"}
    for width in (80, 120, None):
        text = _text(*earnings_tables({**REPORT, "by_node": [gone, live]}, width))
        assert text.count("(revoked)") == 1 and text.count("(simulated now)") == 1, text
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if gone_id in line)
        assert any("(revoked)" in line for line in lines[at : at + 3]), text
        at = next(i for i, line in enumerate(lines) if live_id in line)
        assert not any("revoked" in line for line in lines[at : at + 3]), text
    assert "revoked" not in _text(*earnings_tables(REPORT, 120))
