"""Turning chat messages into a prompt for models that have no chat template.

A node applies the template its model's catalog entry names
(``ModelSpec.prompt_template``). The embedded default, Gemma 3 270M *base*,
has no chat template; the ``plain`` template writes a transcript that base
models continue sensibly, and its stop strings end the answer at the next turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class RenderedPrompt:
    prompt: str
    stop: tuple[str, ...]


# every template's stop strings (below): where an honest answer may end short of its tokens
# (llama.cpp's tokens run on into the stop string its text leaves out: core/canary.py)
TURN_STOPS = ("<|im_end|>", "<end_of_turn>", "[INST]", "\nUser:", "\nSystem:")

_ROLE_LABEL = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}


def render(template: str, turns: Sequence[Turn]) -> RenderedPrompt:
    """Render ``turns`` with ``template`` (plain, chatml, llama2-inst, mistral-inst, gemma)."""
    if template == "chatml":
        body = "".join(f"<|im_start|>{t.role}\n{t.content}<|im_end|>\n" for t in turns)
        return RenderedPrompt(body + "<|im_start|>assistant\n", ("<|im_end|>",))
    if template == "gemma":
        body = ""
        for t in turns:
            role = "model" if t.role == "assistant" else "user"
            body += f"<start_of_turn>{role}\n{t.content}<end_of_turn>\n"
        return RenderedPrompt(body + "<start_of_turn>model\n", ("<end_of_turn>",))
    if template in ("llama2-inst", "mistral-inst"):
        system = "\n".join(t.content for t in turns if t.role in ("system", "developer"))
        out = ""
        first = True
        for t in turns:
            if t.role in ("system", "developer"):
                continue
            if t.role == "user":
                content = t.content
                if first and system and template == "llama2-inst":
                    content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
                elif first and system:
                    content = f"{system}\n\n{content}"
                out += f"[INST] {content} [/INST]"
                first = False
            else:
                out += f" {t.content} "
        return RenderedPrompt(out, ("[INST]",))
    if template != "plain":
        raise ValueError(f"unknown prompt template {template!r}")
    lines = [f"{_ROLE_LABEL.get(t.role, t.role.title())}: {t.content}" for t in turns]
    return RenderedPrompt("\n".join(lines) + "\nAssistant:", ("\nUser:", "\nSystem:"))
