"""The canary prompt pool: distinct, ordinary-sized prompts, code and text alike."""

from __future__ import annotations

from LLM_Mesh.core.canary_prompts import PROMPTS


def test_the_pool_is_distinct_everyday_prompts() -> None:
    assert len(PROMPTS) >= 64 and len(set(PROMPTS)) == len(PROMPTS)
    assert all(p.strip() and len(p) <= 200 for p in PROMPTS)
    code = [p for p in PROMPTS if any(c in p for c in "(){}=<>;#/")]
    # both kinds, so a probe is neither always code nor always prose
    assert len(PROMPTS) // 4 <= len(code) <= 3 * len(PROMPTS) // 4
