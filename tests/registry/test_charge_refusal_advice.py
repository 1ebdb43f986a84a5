"""The 402's advice: "Lower max_tokens" only where a lower one could fit.

Found 2026-12-07 (money41, a new user on ``llm-mesh up``): a key with 16 µNT left asked
``llm-mesh ask "def fibonacci(n):" --max-tokens 1`` and got "this request may cost up to 18
... Lower max_tokens": no max_tokens fits, the prompt's estimate alone (one token a UTF-8
byte, + 16) is more than what is available. The 402 now says so: shorten the prompt.
"""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.core.pricing import estimate
from tests.registry.helpers import running
from tests.registry.test_charge import CHAT, MODEL, PRICE, bearer, new_user, register

LONG = "x" * 200  # a prompt estimated at 200 + 8 + 16 tokens


async def test_a_prompt_too_dear_on_its_own_is_said_not_lower_max_tokens(tmp_path: Path) -> None:
    least = estimate(PRICE, LONG, 1, 32_768, 1)
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _ = await new_user(h, least - 1)
        body = {"model": MODEL, "messages": [{"role": "user", "content": LONG}], "max_tokens": 1}
        r = await h.client.post(CHAT, json=body, headers=bearer(key))
        assert r.status_code == 402, r.text
        msg = r.json()["error"]["message"]
        assert "Lower max_tokens" not in msg, msg
        assert "shorten the prompt" in msg and f"{least:,}" in msg, msg


async def test_a_lower_max_tokens_that_fits_is_still_advised(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _ = await new_user(h, estimate(PRICE, "hi", 1, 32_768, 1))
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
        r = await h.client.post(CHAT, json=body, headers=bearer(key))
        assert r.status_code == 402, r.text
        msg = r.json()["error"]["message"]
        assert "Lower max_tokens" in msg and "shorten the prompt" not in msg, msg
