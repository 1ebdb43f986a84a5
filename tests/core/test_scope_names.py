"""Rate-limit scopes' names outside the process (``core/scope_names.py``)."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.scope_names import IDEMPOTENCY_KEYS, RATE_LIMIT_SCOPES, ScopeNames


def test_replicas_with_one_registry_key_agree_and_no_name_holds_its_scope() -> None:
    key = Ed25519PrivateKey.generate()
    a, b = ScopeNames.of_registry_key(key), ScopeNames.of_registry_key(key)
    other = ScopeNames.of_registry_key(Ed25519PrivateKey.generate())
    scope = "ip:203.0.113.77"
    assert a.name(scope) == b.name(scope)
    assert a.name(scope) != other.name(scope)
    assert a.name(scope) != a.name("ip:203.0.113.78")
    assert re.fullmatch(r"[0-9a-f]{32}", a.name(scope))
    assert "203.0.113" not in a.name(scope)
    assert ScopeNames.random().name(scope) != ScopeNames.random().name(scope)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        ScopeNames(b"x" * 31)


def test_each_use_has_its_own_key_and_the_rate_limit_names_are_unchanged() -> None:
    """Idempotency rows (``IDEMPOTENCY_KEYS``) are named under a key of their own, and the
    rate-limit names keep theirs (a Redis' buckets keep their names across the upgrade)."""
    key = Ed25519PrivateKey.generate()
    limits = ScopeNames.of_registry_key(key)
    rows = ScopeNames.of_registry_key(key, IDEMPOTENCY_KEYS)
    text = "/v1/chat/completions ip:203.0.113.77 alice-1 " + "0" * 64
    assert rows.digest(text) != limits.digest(text)
    assert rows.digest(text) == ScopeNames.of_registry_key(key, IDEMPOTENCY_KEYS).digest(text)
    assert re.fullmatch(r"[0-9a-f]{64}", rows.digest(text))
    assert limits.name(text) == ScopeNames.of_registry_key(key, RATE_LIMIT_SCOPES).name(text)
    assert limits.name(text) == limits.digest(text)[:32]
