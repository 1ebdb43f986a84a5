"""Who is paid for the prompt of a stream continued on another node (``core/pricing.py``
``part_costs``, ``registry/account.price_parts``).

The attack (found 2026-12-05, attack30): a node sends one token at once, without reading
the prompt ("The"), then breaks its connection. The gateway asks another node to continue:
that node processes the whole prompt (and the one token), generates the answer and signs
its count. The client is charged the prompt once, at the continuing node's count, and it
was paid with the *first* part that delivered a token: the breaking node took the price
of a prompt it never processed, the node that did was paid its completion only (and, the
estimate's cap cutting from the last part back, less). On long prompts the prompt is most
of a request's price; canary probes (short prompts) never see it. The prompt is now paid
with the last part that delivered a token: the node whose count is charged, which
processed it (with the text before it) to give the answer's end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.core.pricing import request_cost
from tests.keyed import operator_account
from tests.registry.helpers import FakeNode, FakeNodes, running
from tests.registry.test_charge import MODEL, PRICE, register, settled, settlement
from tests.registry.test_midstream import Dies, _first_is, completion_chunks

PROMPT = "Summarise the following report in one line. " + "The harvest was late. " * 180
PROMPT_TOKENS = 1000  # what the worker's tokenizer counts of PROMPT


def _with_prompt_count(chunks: list[bytes], prompt_tokens: int) -> list[bytes]:
    """``chunks`` with the final usage chunk's ``prompt_tokens`` set."""
    final = json.loads(chunks[-2][len(b"data: ") :])
    final["usage"]["prompt_tokens"] = prompt_tokens
    final["usage"]["total_tokens"] = prompt_tokens + final["usage"]["completion_tokens"]
    return [*chunks[:-2], b"data: " + json.dumps(final).encode() + b"\n\n", chunks[-1]]


async def test_a_node_breaking_after_one_token_is_not_paid_the_prompt_another_processed(
    tmp_path: Path,
) -> None:
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "thief":  # one token at once, then the connection breaks
            return httpx.Response(200, headers=sse, stream=Dies(
                completion_chunks("thief", model, ["The"])[:1]))  # fmt: skip
        body: dict[str, Any] = json.loads(node.calls[-1]["raw"])
        assert body["prompt"] == PROMPT + "The"  # the whole prompt, and the one token
        words = [" harvest", " was", " late", "."]
        # the worker's count of its prompt: the request's and the thief's token
        chunks = _with_prompt_count(completion_chunks("worker", model, words), PROMPT_TOKENS + 1)
        return httpx.Response(200, headers=sse, content=b"".join(chunks))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await register(h, "thief", "mallory")
        await register(h, "worker", "bob")
        s = settlement(h)
        body = {"model": MODEL, "prompt": PROMPT, "stream": True, "max_tokens": 64}
        text = await _first_is(h, "thief", "worker", body, "/v1/completions")
        assert "The harvest was late." in "".join(
            c["choices"][0].get("text", "")
            for c in (json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {"))
            if c.get("choices")
        )
        await settled(s)
        thief_cost = request_cost(PRICE, 0, 1)  # its one token
        worker_cost = request_cost(PRICE, PROMPT_TOKENS, 4)  # the prompt it processed
        mallory = (await s.balance(operator_account("mallory")))[0]
        bob = (await s.balance(operator_account("bob")))[0]
        assert thief_cost * 95 // 100 <= mallory <= thief_cost, (mallory, bob)  # 5 % fee
        assert worker_cost * 95 // 100 <= bob <= worker_cost, (mallory, bob)
        budget = h.settings.pool_daily_budget
        assert await s.balance(POOL) == (budget - thief_cost - worker_cost, 0)
