"""A key's ledger account (``core/key_account.py``): a key of the derived form (made since
2026-12-05) names its own account, so another one named for it is a finding from the
first use on; an older key's account is trusted on first use, as before."""

from __future__ import annotations

import hashlib
import secrets

from LLM_Mesh.core.key_account import (
    DERIVED_KEY_CHARS,
    account_change,
    derived_account,
    derived_key_id,
    key_account_finding,
    key_tag,
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


# The tag filed for a key and both findings word for word (mutation testing, mut31b).


def test_the_tag_filed_for_a_key_is_a_domain_separated_hash_of_32_hex_digits() -> None:
    tag = key_tag("lmk_example")
    expected = hashlib.sha256(b"llm-mesh/ledger-seen-key/v1\x00lmk_example").hexdigest()[:32]
    assert tag == expected and len(tag) == 32  # (a file written before keeps its lines)
    assert key_tag("lmk_other") != tag


def test_both_findings_are_said_in_full() -> None:
    assert account_change("user:a", "user:b") == (
        "the registry named account user:b for LLM_MESH_API_KEY, but user:a before: a key's "
        "account never changes, so one of them is not this key's (its balance shown from "
        "another account's books); remove its line from ledger_seen.json only if the key "
        "was replaced"
    )
    key = "lmk_" + "A" * DERIVED_KEY_CHARS
    own = derived_account(key)
    assert key_account_finding(key, None, "user:b") == (
        f"the registry named account user:b for LLM_MESH_API_KEY, but the key's own account is "
        f"{own} (a key made since 2026-12-05 names its account: user: + a hash of a hash of "
        "the key): the balance shown is another account's (--account for your own)"
    )


def test_an_account_other_than_a_users_named_for_any_key_is_a_finding() -> None:
    """Found 2026-12-07 (review41d): an older key named ``pool`` at its first use was
    remembered so (trust on first use), and ``ledger statement`` then listed the pool's
    debits as not judged (no one holds the pool's receipts), exit 0: the user's own audit
    judged nothing. A key's account is always a ``user:`` one."""
    for named in ("pool", "mint", "network", "operator:" + "c" * 24, "node:n1"):
        for key, before in ((OLD, None), (OLD, named), (NEW, None)):
            said = key_account_finding(key, before, named)
            assert said is not None and f"named account {named} for" in said, (named, key)
            assert "user:... account" in said
    assert key_account_finding(OLD, None, OTHER) is None  # a user: one, first use: trusted
