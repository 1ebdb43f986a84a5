"""Task routing policy, as data: task type -> specialties (in order of preference).

``MeshManager.handle_task(task_type, payload)`` picks the best *available*
model whose specialties match the task's first specialty that any up model
has, then builds the task's prompt from the payload with ``PROMPTS``.
Unknown task types route as ``general``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from LLM_Mesh.core.catalog import ModelSpec

TASK_SPECIALTIES: Mapping[str, tuple[str, ...]] = {
    "python": ("python", "code"),
    "debug": ("debug", "python", "code"),
    "code": ("code", "python", "completion"),
    "completion": ("completion", "code"),
    "explain": ("code", "reasoning", "general"),
    "review": ("code", "reasoning", "general"),
    "reasoning": ("reasoning", "general"),
    "chat": ("chat", "general"),
    "general": ("general", "chat", "reasoning"),
    "administrative": ("administrative", "reasoning", "general"),
}

# Prompt builders: str.format templates over the payload's keys.
PROMPTS: Mapping[str, str] = {
    "debug": (
        "# The following code fails.\n{code}\n# Error:\n# {error}\n"
        "# Explanation of the bug and the fixed code:\n"
    ),
    "explain": "# Explain what this code does.\n{code}\n# Explanation:\n",
    "review": "# Review this code and list problems.\n{code}\n# Review:\n",
    "python": "{prompt}",
    "code": "{prompt}",
    "completion": "{prompt}",
}


def unknown_task(task_type: str | None) -> str | None:
    """Why ``task_type`` is not one the mesh knows (said with the ones it knows), or None
    for a known one or none (found 2026-12-04: ``llm-mesh ask --task pyhton`` was routed as
    ``general`` without a word)."""
    if task_type is None or task_type.lower() in TASK_SPECIALTIES:
        return None
    return f"unknown task {task_type!r}; tasks: {', '.join(TASK_SPECIALTIES)}"


def specialties_for(task_type: str | None) -> tuple[str, ...]:
    return TASK_SPECIALTIES.get((task_type or "general").lower(), TASK_SPECIALTIES["general"])


def rank_models_for_task(task_type: str | None, candidates: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Candidates ordered best-first for the task; those matching no specialty go last.

    Rank: the position of the first of the task's specialties that the model
    lists (earlier is better); then specialists first (the matched specialty
    is the model's *first* one: code-llama-7b for ``python``, starcoder-15b for
    ``code``); then size (bigger models first, the better answer at equal
    specialty).
    """
    wanted = specialties_for(task_type)

    def key(m: ModelSpec) -> tuple[int, int, float, str]:
        pos = min((wanted.index(s) for s in m.specialties if s in wanted), default=len(wanted))
        specialist = 0 if pos < len(wanted) and m.specialties[:1] == (wanted[pos],) else 1
        return (pos, specialist, -m.params_b, m.id)

    return sorted(candidates, key=key)


def build_prompt(task_type: str, payload: Mapping[str, Any] | str) -> str:
    """The prompt for a task from its payload (a str is the prompt itself).

    A task with a template (``PROMPTS``) needs all of the template's keys, or a
    ``prompt`` key that is used as it is. A task without one uses ``prompt``,
    else the payload's items one per line.
    """
    if isinstance(payload, str):
        return payload
    template = PROMPTS.get(task_type.lower())
    keys = _fields(template) if template else []
    if template and all(k in payload for k in keys):
        return template.format(**payload)
    if "prompt" in payload:
        return str(payload["prompt"])
    if template:
        missing = sorted(k for k in keys if k not in payload)
        raise ValueError(
            f"task {task_type!r} needs payload keys {sorted(keys)} (missing {missing}) or a 'prompt'; "
            f"got {sorted(payload)}"
        )
    return "\n".join(f"{k}: {v}" for k, v in payload.items())


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]
