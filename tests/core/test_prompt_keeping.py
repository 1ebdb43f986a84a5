"""Which nodes may keep prompts (``core/prompt_keeping.py``)."""

from __future__ import annotations

from LLM_Mesh.core.prompt_keeping import may_keep_prompts


def test_a_declaration_is_taken_at_its_word() -> None:
    assert may_keep_prompts(False, ["llama-cpp"])
    assert not may_keep_prompts(True, ["openai"])  # its operator vouches for the upstream


def test_an_undeclared_node_is_judged_as_its_engine_would_declare() -> None:
    assert not may_keep_prompts(None, ["llama-cpp", "sim"])  # an older llama or sim node
    assert may_keep_prompts(None, ["openai"])
    assert may_keep_prompts(None, ["llama-cpp", "openai"])
    assert may_keep_prompts(None, ["vllm"])  # another make's engine: nothing vouches for it
