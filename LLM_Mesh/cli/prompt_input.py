"""Where ``llm-mesh ask`` reads its prompt: the argument, standard input or a file.

A prompt given as a command-line argument is in the user's shell history and in every
local user's ``ps`` (``/proc/<pid>/cmdline`` is world-readable). Standard input (``-``, or
no argument with stdin not a terminal) and ``--prompt-file PATH`` keep it out of both
(docs/security.md, "Privacy").

Standard input and the file are read to a bound at most: ``LLM_MESH_MAX_BODY_BYTES``, the
variable a gateway takes as its whole request body's limit, default :data:`MAX_PROMPT_BYTES`
(1 MiB), so a larger prompt could not be sent to a gateway left at its default; more is
refused in one line, unread (found 2026-12-06, small35: both were read whole, ``/dev/zero``
until memory ran out). A user of a gateway whose limit was raised sets the same variable
for ``ask`` (found 2026-12-06, cli36: 1 MiB, whatever the gateway took). A prompt under
the bound can be over it as a body: the prompt as JSON (a quote, a backslash or a control
character takes 2 to 6 bytes) and the request's other fields; such a body is refused
unsent (``core/limits.unsent_too_large``, found 2026-12-06, cli37), and a gateway's own
413 (its limit lower) is said by :func:`refused_as_too_large` in those words
(found 2026-12-06, newuser36: it read "larger than max_body_bytes", a name of node.toml's,
after a prompt the CLI had just taken as within the limit); where its 413 says its limit
(``allowed``) that is said, with what to set LLM_MESH_MAX_BODY_BYTES to (found 2026-12-06,
cli38). A ``--prompt-file`` that is not a regular file (a FIFO, a
device) is refused, not waited on (``text_files.open_regular``); ``-`` reads a pipe.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TextIO

from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.errors import MeshError, PayloadTooLarge
from LLM_Mesh.text_files import NOT_REGULAR, bounded_text, read_text, too_large

__all__ = ["MAX_PROMPT_BYTES", "PromptInputError", "read_prompt", "refused_as_too_large"]

STDIN = "-"
#: the most of a prompt read from standard input or --prompt-file by default: a gateway's
#: default body limit (``RequestLimits.max_body_bytes``), which the prompt alone would exceed
MAX_PROMPT_BYTES = RequestLimits().max_body_bytes


def too_large_hint(limit: int) -> str:
    """Why a prompt past ``limit`` (``LLM_MESH_MAX_BODY_BYTES``) is not read, and what to do."""
    return (
        f"a gateway refuses a request body over {limit:,} bytes (LLM_MESH_MAX_BODY_BYTES, "
        f"default {MAX_PROMPT_BYTES:,}), so a larger prompt could not be sent: shorten it, or "
        "if your gateway's limit was raised, set LLM_MESH_MAX_BODY_BYTES to it here too"
    )


def refused_as_too_large(exc: MeshError, limit: int) -> MeshError:
    """A gateway's 413 (``PayloadTooLarge``) to ``ask`` said as what to do about the prompt;
    ``limit``: the bound the prompt was read to. Any other error is returned as it is."""
    if not isinstance(exc, PayloadTooLarge):
        return exc
    allowed = exc.extra.get("allowed")  # the gateway's limit, where its 413 says it
    if isinstance(allowed, int) and allowed < limit:  # (found 2026-12-06, cli38: not said)
        return MeshError(
            f"the gateway refused the request as too large: its limit is {allowed:,} bytes "
            "a request body (the prompt as JSON with the request's other fields), lower than "
            f"LLM_MESH_MAX_BODY_BYTES here ({limit:,} bytes), which ask checks before "
            f"sending: shorten the prompt, and set LLM_MESH_MAX_BODY_BYTES={allowed} for this "
            "gateway so that ask says so before sending; or ask its operator to raise it"
        )
    if isinstance(allowed, int):
        said = f"its limit is {allowed:,} bytes a request body"
    else:  # a gateway that does not say its limit: its own words
        said = exc.message
    return MeshError(
        f"the gateway refused the request as too large ({said}): the body it limits "
        "is the prompt as JSON (a quote, a backslash or a control character takes 2 to 6 "
        "bytes) with the request's other fields, so a prompt under "
        f"LLM_MESH_MAX_BODY_BYTES ({limit:,} bytes here) can be over it: shorten the prompt; "
        "the gateway's limit is its operator's LLM_MESH_MAX_BODY_BYTES"
    )


class PromptInputError(ValueError):
    """No prompt, or two of them."""


def read_prompt(
    argument: str | None, prompt_file: Path | None, stdin: TextIO, limit: int = MAX_PROMPT_BYTES
) -> str:
    """The prompt: ``argument``, else stdin (``-``, or none given and stdin not a TTY), else
    ``prompt_file``'s text, either read to ``limit`` bytes. Of text read, one trailing line end is dropped (``echo ... |``);
    an empty one is refused, as is one of white space only, wherever it came from (found
    2026-12-05, polish32: ``ask ""`` was sent, answered and charged)."""
    if prompt_file is not None:
        if argument is not None:
            raise PromptInputError("give the prompt once: an argument or --prompt-file, not both")
        try:
            text = read_text(prompt_file, "--prompt-file", limit, too_large_hint(limit))
            return _read(text, "--prompt-file")
        except ValueError as exc:
            said = str(exc)
            if NOT_REGULAR in said:  # the way the docs give (found 2026-12-06, newuser36)
                said += f"; or pipe it to '-': llm-mesh ask - < {shlex.quote(str(prompt_file))}"
            raise PromptInputError(said) from None
    if argument == STDIN or (argument is None and not stdin.isatty()):
        return _read(_read_stdin(stdin, limit), "standard input")
    if argument is None:
        raise PromptInputError(
            "no prompt: give it as an argument, '-' to read it from standard input, "
            "or --prompt-file PATH"
        )
    if not argument.strip():
        raise PromptInputError("no prompt: the argument is empty (or only white space)")
    return argument


def _read_stdin(stdin: TextIO, limit: int) -> str:
    """Standard input's text, to ``limit`` bytes (its bytes where it has them)."""
    try:
        raw = getattr(stdin, "buffer", None)
        if raw is not None:
            return bounded_text(raw, limit, "standard input", too_large_hint(limit))
        text = stdin.read(limit + 1)  # (a text stream: a test's StringIO)
        if len(text.encode("utf-8")) > limit:
            raise too_large("standard input", limit, too_large_hint(limit))
        return text
    except UnicodeError:
        raise PromptInputError("standard input: is not UTF-8 text") from None
    except ValueError as exc:
        raise PromptInputError(str(exc)) from None


def _read(text: str, source: str) -> str:
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise PromptInputError(f"no prompt: {source} was empty (or only white space)")
    return text
