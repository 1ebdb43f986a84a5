"""The ``Store`` protocol (registry/ports.py): every store implements all of it.

The protocol is not ``runtime_checkable`` and the tests are not type-checked, so this
checks by reflection: each protocol method exists on the store, is a coroutine
function, and takes the protocol's parameters (names, kinds, defaults).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.store import SqlStore

PROTOCOL_METHODS = sorted(
    name for name, value in vars(Store).items() if inspect.iscoroutinefunction(value)
)


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def protocol_gaps(cls: type) -> list[str]:
    """What ``cls`` lacks of ``Store``, in words (empty: it implements all of it)."""
    gaps: list[str] = []
    for name in PROTOCOL_METHODS:
        method = getattr(cls, name, None)
        if method is None:
            gaps.append(f"{name}: missing")
        elif not inspect.iscoroutinefunction(method):
            gaps.append(f"{name}: not a coroutine function")
        elif _params(method) != _params(getattr(Store, name)):
            gaps.append(f"{name}: parameters {_params(method)} != {_params(getattr(Store, name))}")
    return gaps


def test_the_protocol_has_the_store_methods() -> None:
    assert (
        sorted(
            [
                "open",
                "close",
                "upsert_node",
                "touch_heartbeat",
                "set_node_state",
                "get_node",
                "list_nodes",
                "record_requests",
                "add_operator",
                "list_operators",
                "operator_by_token",
                "revoke_operator",
                "claim_node_key",
                "get_node_key",
                "advance_node_seq",
                "revoke_node",
                "revoked_nodes_since",
                "get_admin_key_hash",
                "set_admin_key_hash",
                # client API keys (0003)
                "add_api_key",
                "api_key_by_hash",
                "list_api_keys",
                "revoke_api_key",
                "revoked_api_keys_since",
                # uptime rewards (0007): requests per period by node and model
                "request_totals",
                # the request log's retention (registry/retention.py)
                "prune_requests",
                "set_operator_uptime_nodes",
                # an operator's own node keys, one indexed read (attack44; revoked: words44)
                "operator_node_keys",
            ]
        )
        == PROTOCOL_METHODS
    )


@pytest.mark.parametrize("cls", [SqlStore, MemoryStore])
def test_store_implements_the_protocol(cls: type) -> None:
    assert protocol_gaps(cls) == []


def test_a_store_that_falls_short_is_caught() -> None:
    class Short:
        async def open(self) -> None: ...

        def close(self) -> None: ...  # not a coroutine

        async def get_node(self, other: str) -> None: ...  # wrong parameter name

    gaps = protocol_gaps(Short)
    assert "close: not a coroutine function" in gaps
    assert any(g.startswith("get_node: parameters") for g in gaps)
    assert "list_nodes: missing" in gaps
    assert not any(g.startswith("open") for g in gaps)
