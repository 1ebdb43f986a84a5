"""The mesh's request extensions, read at the gateway and stripped before forwarding
(with the OpenAI fields that name or tag the client: ``core/withheld.py``).

In the JSON body (the OpenAI request models tolerate unknown fields):

| field | type | meaning |
|---|---|---|
| ``avoid_regions`` | list of str | never route to a node whose region is listed or within one (``eu`` covers ``eu-west-1``; compared without case or blanks at either end) |
| ``allow_nodes`` | list of str | route only to these node ids |
| ``deny_nodes`` | list of str | never route to these node ids |
| ``mesh_wait_s`` | number | opt in: wait up to this long for a free node instead of 503/429 |
| ``strict_regions`` | bool | also avoid nodes that declared no region (strict region mode) |
| ``trusted_only`` | bool | route only to nodes whose trust score is at least the threshold (``core/trust.py``) |
| ``allow_prompt_keeping`` | bool | opt in: also route to nodes that may keep prompts (``keeps_no_prompts`` false, ``core/prompt_keeping.py``), held out by default |

The header ``X-Mesh-Wait: <seconds>`` is the same as ``mesh_wait_s`` (the body
wins). Waits are capped at :data:`MAX_WAIT_S` and by the request's deadline.
``task_type`` stays in the body: nodes accept it. An API key may add its own
``avoid_regions`` and strict mode (:func:`with_key_regions`, in the admit stage), and
``trusted_only`` and the opt-in to nodes that may keep prompts (:func:`with_key_options`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from LLM_Mesh.core.scoring import UNKNOWN_REGION, region_key
from LLM_Mesh.core.withheld import WITHHELD_FIELDS
from LLM_Mesh.errors import InvalidRequest

__all__ = [
    "EXTENSION_FIELDS",
    "MAX_WAIT_S",
    "Extensions",
    "forwarded_body",
    "read_extensions",
    "with_key_options",
    "with_key_regions",
]

EXTENSION_FIELDS = (
    "avoid_regions",
    "allow_nodes",
    "deny_nodes",
    "mesh_wait_s",
    "strict_regions",
    "trusted_only",
    "allow_prompt_keeping",
)
_EXTENSION_SET = frozenset(EXTENSION_FIELDS)
MAX_WAIT_S = 60.0
_MAX_ITEMS = 1000


@dataclass(frozen=True)
class Extensions:
    avoid_regions: frozenset[str] = frozenset()
    allow_nodes: frozenset[str] | None = None
    deny_nodes: frozenset[str] = frozenset()
    wait_s: float = 0.0
    strict_regions: bool = False  # avoid_regions holds UNKNOWN_REGION too
    trusted_only: bool = False  # only nodes whose trust score reaches the threshold
    allow_prompt_keeping: bool = False  # also nodes that may keep prompts (opt in)
    present: bool = False  # some extension field was in the body (strip before forwarding)
    # whose ``avoid_regions`` (and strict mode) these are, said in a refusal
    # (``no_node.constraints_said``): the request's body, its API key (:func:`with_key_regions`)
    request_regions: bool = False
    key_regions: bool = False
    # the API key id whose share of the send stage's wait places a waiting request takes
    # (set by access.Authenticate when ``wait_s`` > 0; core/slot_wait.place_for)
    waiter: str = ""


NONE = Extensions()


def _names(body: dict[str, Any], key: str) -> frozenset[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise InvalidRequest(f"{key} must be a list of at most {_MAX_ITEMS} strings", param=key)
    if not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{key} must be a list of strings", param=key)
    return frozenset(value)


def _seconds(raw: Any, param: str) -> float:
    if isinstance(raw, bool):
        raise InvalidRequest(f"{param} must be a number of seconds", param=param)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{param} must be a number of seconds", param=param) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{param} must be a finite number >= 0", param=param)
    return min(value, MAX_WAIT_S)


def read_extensions(body: dict[str, Any], wait_header: str | None) -> Extensions:
    """The request's extensions (400 ``InvalidRequest`` naming the field when malformed)."""
    present = not _EXTENSION_SET.isdisjoint(body)  # any of them a key of the body
    if not present and wait_header is None:
        return NONE
    wait = 0.0
    if body.get("mesh_wait_s") is not None:
        wait = _seconds(body["mesh_wait_s"], "mesh_wait_s")
    elif wait_header is not None:
        wait = _seconds(wait_header.strip(), "X-Mesh-Wait")
    strict = body.get("strict_regions", False)
    if not isinstance(strict, bool):
        raise InvalidRequest("strict_regions must be true or false", param="strict_regions")
    trusted = body.get("trusted_only", False)
    if not isinstance(trusted, bool):
        raise InvalidRequest("trusted_only must be true or false", param="trusted_only")
    keeping = body.get("allow_prompt_keeping", False)
    if not isinstance(keeping, bool):
        raise InvalidRequest(
            "allow_prompt_keeping must be true or false", param="allow_prompt_keeping"
        )
    avoid = frozenset(map(region_key, _names(body, "avoid_regions") or ()))
    return Extensions(
        avoid_regions=avoid | {UNKNOWN_REGION} if strict else avoid,
        allow_nodes=_names(body, "allow_nodes"),
        deny_nodes=_names(body, "deny_nodes") or frozenset(),
        wait_s=wait,
        strict_regions=strict,
        trusted_only=trusted,
        allow_prompt_keeping=keeping,
        present=present,
        request_regions=bool(avoid) or strict,
    )


def with_key_regions(ext: Extensions, avoid: frozenset[str], strict: bool) -> Extensions:
    """``ext`` with an API key's ``avoid_regions`` (and strict mode) added to the request's
    (``key_regions`` set when the key has any, even those the request named too)."""
    avoid = frozenset(map(region_key, avoid))
    if strict:
        avoid = avoid | {UNKNOWN_REGION}
    if not avoid or (
        ext.key_regions and avoid <= ext.avoid_regions and (ext.strict_regions or not strict)
    ):
        return ext
    return replace(
        ext,
        avoid_regions=ext.avoid_regions | avoid,
        strict_regions=ext.strict_regions or strict,
        key_regions=True,
    )


def with_key_options(ext: Extensions, trusted_only: bool, allow_prompt_keeping: bool) -> Extensions:
    """``ext`` with an API key's ``trusted_only`` (it only trusts trusted nodes) and
    ``allow_prompt_keeping`` (it opted in to nodes that may keep prompts) added."""
    trusted = ext.trusted_only or trusted_only
    keeping = ext.allow_prompt_keeping or allow_prompt_keeping
    if (trusted, keeping) == (ext.trusted_only, ext.allow_prompt_keeping):
        return ext
    return replace(ext, trusted_only=trusted, allow_prompt_keeping=keeping)


_NOT_FORWARDED = frozenset(EXTENSION_FIELDS + WITHHELD_FIELDS)


def forwarded_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without the extension fields and the fields that name or tag the
    client (``core/withheld.py``): what the node receives."""
    return {k: v for k, v in body.items() if k not in _NOT_FORWARDED}
