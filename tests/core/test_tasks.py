"""Task routing policy and prompt builders (core/tasks.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.catalog import CATALOG, ModelSpec, custom_spec, get_spec
from LLM_Mesh.core.tasks import (
    PROMPTS,
    TASK_SPECIALTIES,
    build_prompt,
    rank_models_for_task,
    specialties_for,
)


def specs(*ids: str) -> list[ModelSpec]:
    out = []
    for i in ids:
        s = get_spec(i)
        assert s is not None
        out.append(s)
    return out


def best(task: str | None, *ids: str) -> str:
    return rank_models_for_task(task, specs(*ids))[0].id


@pytest.mark.parametrize(
    "order", [("gemma-3-270m", "code-llama-7b"), ("code-llama-7b", "gemma-3-270m")]
)
def test_debug_prefers_code_llama_over_gemma(order: tuple[str, str]) -> None:
    assert best("debug", *order) == "code-llama-7b"


@pytest.mark.parametrize(
    "order", [("gemma-3-270m", "code-llama-7b"), ("code-llama-7b", "gemma-3-270m")]
)
def test_python_prefers_code_llama_over_gemma(order: tuple[str, str]) -> None:
    assert best("python", *order) == "code-llama-7b"


def test_debug_prefers_code_llama_over_starcoder() -> None:
    # code-llama lists "debug"; starcoder only "python"/"code".
    assert best("debug", "starcoder-15b", "code-llama-7b", "gemma-3-270m") == "code-llama-7b"


@pytest.mark.parametrize("task", ["debug", "python", "code", "explain", "review"])
def test_only_gemma_up_code_tasks_pick_gemma(task: str) -> None:
    assert best(task, "gemma-3-270m") == "gemma-3-270m"


def test_gemma_beats_general_models_for_code_tasks() -> None:
    for task in ("debug", "python", "code"):
        assert best(task, "mistral-7b", "gemma-3-270m", "qwen1.5-72b-chat") == "gemma-3-270m"


def test_non_matching_models_go_last_but_are_kept() -> None:
    ranked = rank_models_for_task("python", specs("mistral-7b", "gemma-3-270m"))
    assert [m.id for m in ranked] == ["gemma-3-270m", "mistral-7b"]


def test_task_type_is_case_insensitive() -> None:
    assert specialties_for("DEBUG") == TASK_SPECIALTIES["debug"]
    assert best("Debug", "gemma-3-270m", "code-llama-7b") == "code-llama-7b"


@pytest.mark.parametrize("task", ["translate-to-klingon", None, ""])
def test_unknown_task_routes_as_general(task: str | None) -> None:
    assert specialties_for(task) == TASK_SPECIALTIES["general"] == ("general", "chat", "reasoning")
    ranked = rank_models_for_task(task, specs("code-llama-7b", "mistral-7b"))
    assert ranked[0].id == "mistral-7b"


def test_bigger_model_wins_at_equal_specialty_rank() -> None:
    # both list a wanted specialty first and "general" -> same rank; 72B beats 67B
    assert best("general", "deepseek-llm-67b-chat", "qwen1.5-72b-chat") == "qwen1.5-72b-chat"
    assert best("general", "qwen1.5-72b-chat", "deepseek-llm-67b-chat") == "qwen1.5-72b-chat"


def test_earlier_wanted_specialty_beats_size() -> None:
    # for "reasoning", mistral-7b (lists reasoning) beats llama-2-70b (general/chat only)
    assert best("reasoning", "llama-2-70b-chat", "mistral-7b") == "mistral-7b"


def test_administrative_picks_administrative_tier() -> None:
    ranked = rank_models_for_task("administrative", list(CATALOG))
    assert ranked[0].tier == "administrative"


def test_ranking_is_deterministic_on_ties() -> None:
    a = custom_spec("b-model", sha256=None)
    b = custom_spec("a-model", sha256=None)
    assert [m.id for m in rank_models_for_task("general", [a, b])] == ["a-model", "b-model"]


def test_every_task_specialty_exists_in_catalog() -> None:
    known = {s for m in CATALOG for s in m.specialties}
    for task, wanted in TASK_SPECIALTIES.items():
        assert wanted, task
        assert set(wanted) <= known, task


# --- prompts -----------------------------------------------------------------------


def test_debug_prompt_includes_code_and_error() -> None:
    code = "def f(x): return x +"
    p = build_prompt("debug", {"code": code, "error": "SyntaxError: invalid syntax"})
    assert code in p
    assert "SyntaxError: invalid syntax" in p
    assert p.index(code) < p.index("SyntaxError")
    assert p == PROMPTS["debug"].format(code=code, error="SyntaxError: invalid syntax")


def test_explain_and_review_prompts_include_code() -> None:
    assert "print(1)" in build_prompt("explain", {"code": "print(1)"})
    assert "print(1)" in build_prompt("review", {"code": "print(1)"})


@pytest.mark.parametrize("task", ["python", "code", "completion", "chat", "general", "nope"])
def test_prompt_key_is_used_verbatim(task: str) -> None:
    assert build_prompt(task, {"prompt": "def fibonacci(n):"}) == "def fibonacci(n):"


def test_string_payload_is_the_prompt() -> None:
    assert build_prompt("debug", "raw text") == "raw text"


def test_payload_braces_are_not_reformatted() -> None:
    p = build_prompt("debug", {"code": "d = {'a': 1}\nf'{x}'", "error": "KeyError: {x}"})
    assert "d = {'a': 1}" in p
    assert "KeyError: {x}" in p


def test_unknown_task_without_prompt_lists_payload() -> None:
    assert build_prompt("mystery", {"a": 1, "b": "two"}) == "a: 1\nb: two"


@pytest.mark.parametrize("task", ["debug", "explain", "review"])
def test_missing_keys_raise_value_error(task: str) -> None:
    with pytest.raises(ValueError, match="code"):
        build_prompt(task, {"source": "print(1)"})


@pytest.mark.parametrize("task", ["python", "code", "completion"])
def test_prompt_tasks_without_prompt_key_raise(task: str) -> None:
    with pytest.raises(ValueError, match="prompt"):
        build_prompt(task, {"code": "x"})


def test_specialists_win_python_goes_to_code_llama_code_to_starcoder() -> None:
    everything = list(CATALOG)
    assert rank_models_for_task("python", everything)[0].id == "code-llama-7b"
    assert rank_models_for_task("code", everything)[0].id == "starcoder-15b"
    assert rank_models_for_task("debug", everything)[0].id == "code-llama-7b"


def test_missing_template_keys_are_named() -> None:
    with pytest.raises(ValueError) as info:
        build_prompt("debug", {"error": "boom", "lang": "py"})
    assert str(info.value) == (
        "task 'debug' needs payload keys ['code', 'error'] (missing ['code']) or a 'prompt'; "
        "got ['error', 'lang']"
    )


def test_unknown_task_names_the_known_ones() -> None:
    from LLM_Mesh.core.tasks import unknown_task

    assert unknown_task(None) is None and unknown_task("Python") is None
    said = unknown_task("pyhton")
    assert said is not None and "'pyhton'" in said and "python, debug, code" in said
