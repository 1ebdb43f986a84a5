"""An openai SDK user's audit of the gateway (2026-12-05): every request field either works
(reaches the node) or is refused by name (400), never dropped without a word or a 500."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client

HI = [{"role": "user", "content": "hi"}]
MODEL = "gemma-3-270m"


async def test_penalties_reach_the_node_and_are_checked_in_range(tmp_path: Path) -> None:
    """``presence_penalty`` / ``frequency_penalty`` were accepted and ignored (found
    2026-12-05); now forwarded to the node, which applies them, in OpenAI's range."""
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            await client.chat.completions.create(
                model=MODEL, messages=HI, presence_penalty=0.5, frequency_penalty=-1.25
            )
            await client.completions.create(model=MODEL, prompt="def", frequency_penalty=2)
            for field in ("presence_penalty", "frequency_penalty"):
                for value in (2.01, -2.5):
                    with pytest.raises(openai.BadRequestError) as bad:
                        await client.chat.completions.create(
                            model=MODEL, messages=HI, **{field: value}
                        )
                    assert bad.value.param == field and field in bad.value.message
    chat, done = (call["body"] for call in node.calls)
    assert chat["presence_penalty"] == 0.5 and chat["frequency_penalty"] == -1.25
    assert done["frequency_penalty"] == 2
    assert len(node.calls) == 2  # the refused ones never reached it
