"""Which model files an admin-marked canary verifier is the reference for (pure).

The admin marks a node a canary verifier for the model files it checked
(``llm-mesh registry nodes trust NODE [--model M ...]``): a mark is a model id and the
sha256 the node declared for it at the time (``canary_verifiers.models``, migration
0034). The node's answers are the probes' reference, and ``trusted_only`` routes to it,
for those files only: a model it declares later, or the same model declared with another
sha256 (another file under the checked name), the admin never checked, so it is not
covered until marked (found 2026-12-07, verifier43: a mark covered every model the node
declared, so a verifier declaring a model the admin never looked at became its reference).

A mark made before 0034 has no models: it covers none, and the registry says so at start
and in ``registry nodes verifiers`` (mark it again). Giving it "the models it serves at
upgrade time" would be the hole itself: those may include models declared after the
admin's check, and the migration cannot tell which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["chosen_marks", "covers", "marks_from", "unmarked_text"]


def covers(marks: Mapping[str, str] | None, model: str, sha256: str | None) -> bool:
    """Whether the marks (model -> sha256) cover ``model`` declared with ``sha256``."""
    if not marks or not sha256:
        return False
    marked = marks.get(model)
    return marked is not None and marked.lower() == sha256.lower()


def marks_from(raw: Any) -> dict[str, str]:
    """A stored mark (the JSON column) as model -> sha256: anything else in it (a row written
    before 0034 holds ``{}``, a hand edit anything) covers nothing."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(m): s.lower()
        for m, s in raw.items()
        if isinstance(m, str) and m and isinstance(s, str) and s
    }


def _served(models: Iterable[Any]) -> dict[str, str]:
    """The models of a stored registration (``NodeRecord.models``) declared with a sha256."""
    out: dict[str, str] = {}
    for m in models:
        if isinstance(m, Mapping):
            mid, sha = m.get("id"), m.get("sha256")
            if isinstance(mid, str) and mid and isinstance(sha, str) and sha:
                out[mid] = sha.lower()
    return out


def chosen_marks(node_id: str, models: Iterable[Any], wanted: Sequence[str]) -> dict[str, str]:
    """The marks ``registry nodes trust`` makes: each model in ``wanted`` (none: every model
    the node serves now with a declared sha256), with the sha256 its registration declares.
    A :class:`ValueError` saying what to do when there is none, or a wanted model is not
    served with one (no verifier can be the reference for a file it did not hash)."""
    served = _served(models)
    if not wanted:
        if not served:
            raise ValueError(
                f"node {node_id} serves no model with a declared sha256: there is no file it "
                "could be the reference for (let it hash its model files, then mark it)"
            )
        return served
    missing = [m for m in wanted if m not in served]
    if missing:
        offer = ", ".join(sorted(served)) or "none"
        raise ValueError(
            f"node {node_id} does not serve {', '.join(missing)} with a declared sha256 "
            f"(it does: {offer}): mark only the models it serves with their file's sha256"
        )
    return {m: served[m] for m in wanted}


def unmarked_text(node_id: str) -> str:
    """What the registry and the listing say of a mark made before 0034 (no models)."""
    return (
        f"canary verifier {node_id} was marked before marks named their models (migration "
        "0034): it is the reference for no model until marked again "
        f"(llm-mesh registry nodes trust {node_id} [--model M])"
    )
