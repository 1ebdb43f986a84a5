"""Which model files an admin-marked canary verifier is the reference for (pure).

The admin marks a node a canary verifier for the model files it checked
(``llm-mesh registry nodes trust NODE [--model M ...]``): a mark is a model id and the
sha256 the node declared for it at the time (``canary_verifier_models``, migration 0036;
0034 had them in ``canary_verifiers.models``). The node's answers are the probes'
reference, and ``trusted_only`` routes to it, for those files only: a model it declares later, or the same model declared with another
sha256 (another file under the checked name), the admin never checked, so it is not
covered until marked (found 2026-12-07, verifier43: a mark covered every model the node
declared, so a verifier declaring a model the admin never looked at became its reference).

A mark made before 0034 has no models: it covers none, and the registry says so at start
and in ``registry nodes verifiers`` (mark it again). Since 0036 the marks are rows of
``canary_verifier_models`` (``canary_verifiers``, which the code before 0034 reads as marks of
whole nodes, keeps only the marks older code wrote: as made before 0034, they cover none). Giving it "the models it serves at
upgrade time" would be the hole itself: those may include models declared after the
admin's check, and the migration cannot tell which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["chosen_marks", "covers", "unmarked_text"]


def covers(marks: Mapping[str, str] | None, model: str, sha256: str | None) -> bool:
    """Whether the marks (model -> sha256) cover ``model`` declared with ``sha256``."""
    if not marks or not sha256:
        return False
    marked = marks.get(model)
    return marked is not None and marked.lower() == sha256.lower()


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
    """What the registry and the listing say of a mark that names no model: one made before
    0034, or one a replica not yet at 0036 made (verifier44)."""
    return (
        f"canary verifier {node_id} was marked by an older llm-mesh (before migration 0034, "
        "or by a replica not yet upgraded to 0036), a mark that names no model: it is the "
        "reference for no model until marked again "
        f"(llm-mesh registry nodes trust {node_id} [--model M])"
    )
