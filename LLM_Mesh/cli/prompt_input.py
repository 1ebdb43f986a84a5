"""Where ``llm-mesh ask`` reads its prompt: the argument, standard input or a file.

A prompt given as a command-line argument is in the user's shell history and in every
local user's ``ps`` (``/proc/<pid>/cmdline`` is world-readable). Standard input (``-``, or
no argument with stdin not a terminal) and ``--prompt-file PATH`` keep it out of both
(docs/security.md, "Privacy").
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from LLM_Mesh.text_files import read_text

__all__ = ["PromptInputError", "read_prompt"]

STDIN = "-"


class PromptInputError(ValueError):
    """No prompt, or two of them."""


def read_prompt(argument: str | None, prompt_file: Path | None, stdin: TextIO) -> str:
    """The prompt: ``argument``, else stdin (``-``, or none given and stdin not a TTY), else
    ``prompt_file``'s text. Of text read, one trailing line end is dropped (``echo ... |``);
    an empty one is refused, as is one of white space only, wherever it came from (found
    2026-12-05, polish32: ``ask ""`` was sent, answered and charged)."""
    if prompt_file is not None:
        if argument is not None:
            raise PromptInputError("give the prompt once: an argument or --prompt-file, not both")
        try:
            return _read(read_text(prompt_file, "--prompt-file"), "--prompt-file")
        except ValueError as exc:
            raise PromptInputError(str(exc)) from None
    if argument == STDIN or (argument is None and not stdin.isatty()):
        return _read(stdin.read(), "standard input")
    if argument is None:
        raise PromptInputError(
            "no prompt: give it as an argument, '-' to read it from standard input, "
            "or --prompt-file PATH"
        )
    if not argument.strip():
        raise PromptInputError("no prompt: the argument is empty (or only white space)")
    return argument


def _read(text: str, source: str) -> str:
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise PromptInputError(f"no prompt: {source} was empty (or only white space)")
    return text
