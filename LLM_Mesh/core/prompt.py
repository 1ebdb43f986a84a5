"""Turning chat messages into a prompt for models that have no chat template.

A node applies the template its model's catalog entry names
(``ModelSpec.prompt_template``). The embedded default, Gemma 3 270M *base*,
has no chat template; the ``plain`` template writes a transcript that base
models continue sensibly, and its stop strings end the answer at the next turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class RenderedPrompt:
    """``prompt`` is the whole text; ``segments`` the same text in pieces, each marked
    whether it is the template's own control string (``<start_of_turn>``, ...): only
    those may become a tokenizer's special tokens, never a message's text."""

    prompt: str
    stop: tuple[str, ...]
    segments: tuple[tuple[str, bool], ...] = ()


class _Pieces:
    def __init__(self) -> None:
        self.parts: list[tuple[str, bool]] = []

    def ctl(self, s: str) -> _Pieces:
        self.parts.append((s, True))
        return self

    def text(self, s: str) -> _Pieces:
        if s:
            self.parts.append((s, False))
        return self

    def done(self, stop: tuple[str, ...]) -> RenderedPrompt:
        return RenderedPrompt("".join(p for p, _ in self.parts), stop, tuple(self.parts))


def token_fragments(
    segments: Sequence[tuple[str, bool]], is_control: Callable[[str], bool]
) -> list[tuple[str, bool]]:
    """What to tokenize, in order, and whether to parse special tokens in it: a template's
    control string the vocabulary has as one special token (``is_control``) is parsed;
    everything else (a message's text, a "control" string this vocabulary spells as text)
    is joined into fragments tokenized as text. Special tokens are where llama.cpp cuts
    the text anyway, so a prompt with no control string in its messages makes the same
    tokens as its whole text parsed at once."""
    out: list[tuple[str, bool]] = []
    for piece, ctl in segments:
        special = ctl and is_control(piece)
        if not piece:
            continue
        if out and not special and not out[-1][1]:
            out[-1] = (out[-1][0] + piece, False)
        else:
            out.append((piece, special))
    return out


# every template's stop strings (below): where an honest answer may end short of its tokens
# (llama.cpp's tokens run on into the stop string its text leaves out: core/canary.py)
TURN_STOPS = ("<|im_end|>", "<end_of_turn>", "[INST]", "\nUser:", "\nSystem:")

_ROLE_LABEL = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}


def render(template: str, turns: Sequence[Turn]) -> RenderedPrompt:
    """Render ``turns`` with ``template`` (plain, chatml, llama2-inst, mistral-inst, gemma)."""
    p = _Pieces()
    if template == "chatml":
        for t in turns:
            p.ctl("<|im_start|>").text(f"{t.role}\n{t.content}").ctl("<|im_end|>").text("\n")
        return p.ctl("<|im_start|>").text("assistant\n").done(("<|im_end|>",))
    if template == "gemma":
        for t in turns:
            role = "model" if t.role == "assistant" else "user"
            p.ctl("<start_of_turn>").text(f"{role}\n{t.content}").ctl("<end_of_turn>").text("\n")
        return p.ctl("<start_of_turn>").text("model\n").done(("<end_of_turn>",))
    if template in ("llama2-inst", "mistral-inst"):
        system = "\n".join(t.content for t in turns if t.role in ("system", "developer"))
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
                p.ctl("[INST]").text(f" {content} ").ctl("[/INST]")
                first = False
            else:
                p.text(f" {t.content} ")
        return p.done(("[INST]",))
    if template != "plain":
        raise ValueError(f"unknown prompt template {template!r}")
    lines = [f"{_ROLE_LABEL.get(t.role, t.role.title())}: {t.content}" for t in turns]
    return p.text("\n".join(lines) + "\nAssistant:").done(("\nUser:", "\nSystem:"))
