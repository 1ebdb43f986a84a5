"""What of a client's request body the gateway never forwards to a node: the OpenAI fields
that name or tag the client (docs/security.md, "Privacy": users may stay anonymous).

Nodes are run by community operators and use none of these; each is stripped in the parse
stage, with the mesh's own extension fields (``registry/extensions.py``), before a node
sees the body:

| field | what it is (OpenAI's API reference) |
|---|---|
| ``user`` | "a stable identifier for your end-users", often an account name or e-mail |
| ``safety_identifier`` | its successor: a stable id per end user (up to 64 characters) |
| ``prompt_cache_key`` | its other successor: a key bucketing "similar requests", often per user or session |
| ``metadata`` | up to 16 key-value pairs the client tags a stored completion with |
| ``store`` | whether the provider should keep the completion: the mesh keeps none, and a node told nothing of it cannot be asked |

``web_search_options`` (with ``user_location``: the user's city and time zone) was withheld
too; since 2026-12-05 it is refused (``core/unsupported.py``: no node searches the web), so
it never reaches a node either.

Fields that say nothing of who sent a request (``service_tier``,
``prompt_cache_retention``, sampling, ``task_type``) are forwarded as sent. The fields
are still validated as part of the request (``core/schemas.py``). Pure.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WITHHELD_FIELDS", "has_withheld"]

WITHHELD_FIELDS = (
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "metadata",
    "store",
)
_WITHHELD = frozenset(WITHHELD_FIELDS)


def has_withheld(body: dict[str, Any]) -> bool:
    """Whether ``body`` carries a field the node must not get (cheap: a set test)."""
    return not _WITHHELD.isdisjoint(body)
