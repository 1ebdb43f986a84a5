"""Which nodes may keep prompts: the default route filter's rule (the registry and the
gateway store no prompt; a node's keeping is its operator's signed word, which routing
follows: docs/security.md, "Privacy").

A node declares ``keeps_no_prompts`` in its signed registration (``node/config.py``: true by
default for the ``llama-cpp`` and ``sim`` engines, which keep nothing; false for ``openai``,
whose upstream its operator does not vouch for). The gateway routes a request only to nodes
that keep no prompts unless the request (``allow_prompt_keeping: true``) or its API key
(``--allow-keep``) opts in (``registry/send.py``). A registration that declares
nothing (``None``: a node older than the field, 2026-12-01, or a stored row that does not
tell it, written before migration 0029 or by an older replica; the store keeps the
declaration, ``nodes.keeps_no_prompts``, for every replica and a restart) is judged as the node's own
default would be: it keeps no prompts when every model it hosts runs on an engine that
keeps nothing, else it may keep them (an undeclared ``openai`` node, or another make's).
A replica that held the node's ``false`` keeps it over such a row, never a ``true``
(``registry/node_sync.py``); a node's heartbeat repeats its declaration, and a replica
holding another tells it to register again (``registry/api.py``; found 2026-12-06,
keepers34).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KEEPS_NOTHING_ENGINES", "may_keep_prompts"]

# the engines that store and log no prompt or output (the node's own default declares so)
KEEPS_NOTHING_ENGINES = frozenset({"llama-cpp", "sim"})


def may_keep_prompts(declared: bool | None, engines: Iterable[str]) -> bool:
    """Whether a node that declared ``keeps_no_prompts = declared`` and serves its models on
    ``engines`` may keep prompts (then it is routed only requests that opt in)."""
    if declared is not None:
        return not declared
    return not all(engine in KEEPS_NOTHING_ENGINES for engine in engines)
