"""A key's ledger account (``core/key_account.py``): a key of the derived form (made since
2026-12-05) names its own account, so another one named for it is a finding from the
first use on; an older key's account is trusted on first use, as before."""

from __future__ import annotations

import secrets

from LLM_Mesh.core.key_account import (
    account_change,
    derived_account,
    derived_key_id,
    key_account_finding,
)
from LLM_Mesh.core.ledger_entry import pseudonym

NEW = "lmk_" + secrets.token_urlsafe(33)
OLD = "lmk_" + secrets.token_urlsafe(32)
OTHER = "user:" + "b" * 24


def test_only_the_derived_form_derives() -> None:
    assert len(NEW) == 48 and len(OLD) == 47
    key_id = derived_key_id(NEW)
    assert key_id is not None and len(key_id) == 16 and key_id.startswith("key_")
    assert derived_account(NEW) == pseudonym("user", key_id)
    assert derived_key_id(NEW) == key_id  # the same key, the same id
    assert derived_key_id("lmk_" + secrets.token_urlsafe(33)) != key_id
    for other in (OLD, NEW + "x", NEW[:-1], "lmo_" + NEW[4:], NEW[:10] + "." + NEW[11:], ""):
        assert derived_key_id(other) is None and derived_account(other) is None, other


def test_a_derived_keys_account_is_its_own_from_the_first_use() -> None:
    own = derived_account(NEW)
    assert own is not None
    assert key_account_finding(NEW, None, own) is None
    said = key_account_finding(NEW, None, OTHER)  # nothing remembered: still a finding
    assert said is not None and OTHER in said and own in said
    assert key_account_finding(NEW, OTHER, OTHER) is not None  # a remembered wrong one too


def test_an_older_key_is_trusted_on_first_use_as_before() -> None:
    mine = "user:" + "a" * 24
    assert key_account_finding(OLD, None, mine) is None
    assert key_account_finding(OLD, mine, OTHER) == account_change(mine, OTHER) is not None
