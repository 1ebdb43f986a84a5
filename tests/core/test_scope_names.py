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


# (mutation testing, mut31b)


def test_a_name_is_what_it_was_for_the_same_secret() -> None:
    """A known answer: the names of a given secret never change across versions (a shared
    Redis' buckets and the idempotency rows keep being found)."""
    names = ScopeNames(bytes(range(32)))
    assert names.name("ip:203.0.113.77") == "1e28a3aa051157994a86ea179345128b"


def test_random_names_use_a_fresh_32_byte_secret_for_the_use_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("LLM_Mesh.core.scope_names.os.urandom", lambda n: bytes(range(n)))
    text = "alice-1"
    for info in (RATE_LIMIT_SCOPES, IDEMPOTENCY_KEYS):
        assert ScopeNames.random(info).digest(text) == ScopeNames(bytes(range(32)), info).digest(
            text
        )


def test_the_short_secret_refusal_says_why() -> None:
    with pytest.raises(ValueError, match=r"^the naming secret must be at least 32 bytes$"):
        ScopeNames(b"x" * 31)
    ScopeNames(b"x" * 32)  # exactly 32: enough
