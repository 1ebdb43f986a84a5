"""Task routing policy, as data: task type -> specialties (in order of preference).

``MeshManager.handle_task(task_type, payload)`` picks the best *available*
model whose specialties match the task's first specialty that any up model
has, then builds the task's prompt from the payload with ``PROMPTS``.
Unknown task types route as ``general``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def specialties_for(task_type: str | None) -> tuple[str, ...]:
    return TASK_SPECIALTIES.get((task_type or "general").lower(), TASK_SPECIALTIES["general"])


def rank_models_for_task(task_type: str | None, candidates: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Candidates ordered best-first for the task; those matching no specialty go last.

    Rank: the position of the first of the task's specialties that the model
    lists (earlier is better), then the model's own order of specialties
    (a model whose *first* specialty matches is a specialist), then size
    (bigger models first, as the better answer at equal specialty).
    """
    wanted = specialties_for(task_type)

    def key(m: ModelSpec) -> tuple[int, int, float, str]:
        pos = min((wanted.index(s) for s in m.specialties if s in wanted), default=len(wanted))
        own = min((m.specialties.index(s) for s in wanted if s in m.specialties), default=99)
        return (pos, own, -m.params_b, m.id)

    return sorted(candidates, key=key)


def build_prompt(task_type: str, payload: Mapping[str, Any] | str) -> str:
    """The prompt for a task from its payload (a str is the prompt itself)."""
    if isinstance(payload, str):
        return payload
    template = PROMPTS.get(task_type.lower())
    if "prompt" in payload and (template is None or template == "{prompt}"):
        return str(payload["prompt"])
    if template is None:
        if "prompt" in payload:
            return str(payload["prompt"])
        return "\n".join(f"{k}: {v}" for k, v in payload.items())
    fields: dict[str, Any] = {k: "" for k in _fields(template)}
    fields.update(payload)
    missing = [k for k in _fields(template) if k not in payload]
    if missing and all(k not in payload for k in _fields(template)):
        raise ValueError(
            f"task {task_type!r} needs payload keys {sorted(_fields(template))}, got {sorted(payload)}"
        )
    return template.format(**fields)


def _fields(template: str) -> Sequence[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(template) if f]
