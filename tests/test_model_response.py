"""``str()`` of the seed API's answers (``LLM_Mesh/model_response.py``, and ``TaskResult``
in ``mesh_manager``): a simulated answer says so wherever it is printed."""

from __future__ import annotations

from LLM_Mesh.mesh_manager import TaskResult
from LLM_Mesh.model_response import SIMULATED_MARK, ModelResponse, labelled_text

BODY = {
    "model": "code-llama-7b",
    "choices": [{"index": 0, "text": "return n", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


def answer(simulated: bool) -> ModelResponse:
    mesh = {
        "node_id": "node-a",
        "model": "code-llama-7b",
        "engine": "sim" if simulated else "llama-cpp",
    }
    if simulated:
        mesh["simulated"] = True
    return ModelResponse.from_openai(
        {**BODY, "mesh": mesh}, task_type="python", requested="code-llama-7b"
    )


def test_a_simulated_answer_printed_says_it_is_made_up() -> None:
    # found 2026-12-06 (newuser37): print(result) showed a sim node's made-up text alone
    r = answer(simulated=True)
    assert r.simulated is True
    assert str(r) == f"{r}" == "[SIMULATED engine: made-up text] return n"
    assert r.text == "return n"  # the text itself stays bare
    task = TaskResult.from_response("python", r)
    assert str(task) == "[SIMULATED engine: made-up text] return n"
    assert task.response == "return n"


def test_a_real_answer_printed_is_its_text_alone() -> None:
    r = answer(simulated=False)
    assert r.simulated is False
    assert str(r) == r.text == "return n"
    assert str(TaskResult.from_response("python", r)) == "return n"


def test_labelled_text() -> None:
    assert labelled_text("x", True) == SIMULATED_MARK + "x"
    assert labelled_text("x", False) == "x"
