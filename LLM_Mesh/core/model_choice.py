"""Which model answers the seed API when the one asked for cannot (pure).

``LLM_Mesh/distributed_models.py`` (``get_model_response``, ``handle_task``, ``llm-mesh
ask``) asks the gateway; when the gateway says a model is not up (naming those that are),
these choose what answers instead, from the catalog's specialties and the task policy
(``core/tasks.py``):

- :func:`fallback_for`: a model of the same specialty (``fallback=True``, ``--fallback``);
- :func:`task_best`: the best model for a task among those up, the task's first choice
  left out (no model was asked for);
- :func:`best_for_task`: the best model up for a task, or ``None``;
- :func:`resting_said`: the words for nodes their operator paused or that drain.

Moved out of ``distributed_models.py`` (2026-12-07, words43: it had reached 596 lines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.client_retry import RESTING_SAID
from LLM_Mesh.core.tasks import rank_models_for_task

__all__ = ["best_for_task", "fallback_for", "mapping_rows", "resting_said", "task_best"]


def mapping_rows(value: Any) -> list[Mapping[str, Any]]:
    """The objects of ``value`` if it is a list, else none (a hostile gateway's answer)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def fallback_for(model: str, task_type: str | None, available: Sequence[str]) -> str | None:
    """The model of ``available`` that answers for ``model`` (not up): one sharing a
    specialty with it, the most specialties in common first, then the bigger model; with a
    ``task_type``, the task's best of those. ``None``: none fits."""
    spec = get_spec(model)
    specs = [s for s in (get_spec(a) for a in available) if s is not None and s.id != model]
    if not specs:
        return None
    wanted = set(spec.specialties) if spec else set()
    if task_type is None and spec is not None:
        same = [s for s in specs if wanted & set(s.specialties)]
        ranked = sorted(same, key=lambda s: (-len(wanted & set(s.specialties)), -s.params_b, s.id))
    else:
        ranked = [
            s
            for s in rank_models_for_task(task_type, specs)
            if not wanted or wanted & set(s.specialties)
        ]
    return ranked[0].id if ranked else None


def task_best(task_type: str | None, available: Sequence[str], tried: str) -> str | None:
    """The best model for ``task_type`` of ``available`` (the catalog's), ``tried`` left
    out; ``None``: none."""
    up = [s for s in (get_spec(m) for m in available) if s is not None and s.id != tried]
    return rank_models_for_task(task_type, up)[0].id if up else None


def best_for_task(task_type: str | None, available: Sequence[str]) -> str | None:
    """The best model up (``available``, the catalog's) for ``task_type``; ``None``: none."""
    up = [s for s in (get_spec(m) for m in available) if s is not None]
    return rank_models_for_task(task_type, up)[0].id if up else None


def resting_said(nodes: Any) -> str:
    """``; N nodes ... are paused or draining ...`` for ``nodes`` (``GET /mesh/nodes``'s
    rows) that their operator paused or that drain, else ``""``. Found 2026-12-06
    (newuser35): after ``llm-mesh node pause`` on ``up``'s node, ``llm-mesh ask`` without
    ``--model`` (task routing, also ``handle_task``) said only ``no model is up on the
    network right now``, while ``--model`` said that the node is paused and comes back."""
    resting = [n for n in mapping_rows(nodes) if n.get("state") in ("paused", "draining")]
    if not resting:
        return ""
    models = sorted(
        {str(h["id"]) for n in resting for h in mapping_rows(n.get("models")) if "id" in h}
    )
    count = "1 node" if len(resting) == 1 else f"{len(resting)} nodes"
    hosting = f" hosting {', '.join(models)}" if models else ""
    verb = "is" if len(resting) == 1 else "are"
    return f"; {count}{hosting} {verb} {RESTING_SAID}"
