"""``core/model_choice.py``: what answers when the model asked for cannot (pure)."""

from __future__ import annotations

from LLM_Mesh.core.client_retry import RESTING_SAID
from LLM_Mesh.core.model_choice import (
    best_for_task,
    fallback_for,
    mapping_rows,
    resting_said,
    task_best,
)


def test_a_fallback_shares_a_specialty_most_in_common_first() -> None:
    # code-llama-7b: python, code, debug; starcoder-15b shares two, gemma-3-270m one
    up = ["gemma-3-270m", "starcoder-15b", "mistral-7b"]
    assert fallback_for("code-llama-7b", None, up) == "starcoder-15b"
    assert fallback_for("code-llama-7b", None, ["mistral-7b"]) is None  # nothing in common
    assert fallback_for("code-llama-7b", None, ["code-llama-7b"]) is None  # itself: not
    assert fallback_for("code-llama-7b", None, ["not-in-catalog"]) is None


def test_the_tasks_best_leaves_out_what_was_tried() -> None:
    up = ["gemma-3-270m", "code-llama-7b"]
    first = best_for_task("python", up)
    assert first in up
    other = task_best("python", up, tried=first or "")
    assert other in up and other != first
    assert task_best("python", ["gemma-3-270m"], tried="gemma-3-270m") is None
    assert best_for_task("python", []) is None


def test_resting_nodes_are_said_and_a_hostile_answer_is_not() -> None:
    nodes = [
        {"node_id": "a", "state": "paused", "models": [{"id": "gemma-3-270m"}, "x"]},
        {"node_id": "b", "state": "online", "models": [{"id": "mistral-7b"}]},
        "not a row",
    ]
    assert resting_said(nodes) == f"; 1 node hosting gemma-3-270m is {RESTING_SAID}"
    two = [{"state": "draining", "models": None}, {"state": "paused"}]
    assert resting_said(two) == f"; 2 nodes are {RESTING_SAID}"
    assert resting_said({"nodes": nodes}) == "" and resting_said(None) == ""
    assert mapping_rows([{"a": 1}, 2, None]) == [{"a": 1}]
