"""Which ledger account a registry says an API key pays from, remembered by the verifier.

``GET /v1/balance`` names the caller's account (``user:`` + a hash of the key's id, which
the registry chose and the key does not carry), and ``llm-mesh ledger verify`` checks that
account's balance against the entries. A verifier cannot derive the account from its key,
so a registry could name another account there (one whose books add up) while it debits
the user's own: the balance shown "matches the ledger" and every check passes (found
2026-12-05). The verifier keeps the first account named for its key (trust on first use,
in ``ledger_seen.json``, under :func:`key_tag`, never the key) and names any other later
(:func:`account_change`).

Keys made since 2026-12-05 (``receipts29``) name their account themselves: such a key is
``lmk_`` + 44 URL-safe characters (264 random bits; an older one has 43), and its id is
``key_`` + 12 hex digits of a domain-separated SHA-256 of the key (:func:`derived_key_id`)
instead of random ones, so the key's holder computes its account (``user:`` + the public
pseudonym of that id, ``core/ledger_entry.pseudonym``: :func:`derived_account`) and no
first use is trusted: another account named for it is a finding from the first run
(:func:`key_account_finding`). Older keys keep their random id and account (no
migration, nothing linked in public); for them trust on first use remains. Pure.
"""

from __future__ import annotations

import hashlib
import re

from LLM_Mesh.core.ledger_entry import pseudonym

__all__ = [
    "DERIVED_KEY_CHARS",
    "account_change",
    "derived_account",
    "derived_key_id",
    "key_account_finding",
    "key_tag",
]

_DOMAIN = b"llm-mesh/ledger-seen-key/v1\x00"
_ID_DOMAIN = b"llm-mesh/api-key-id/v1\x00"
DERIVED_KEY_CHARS = 44  # after ``lmk_``: secrets.token_urlsafe(33); an older key has 43
_DERIVED_KEY = re.compile(rf"lmk_[A-Za-z0-9_-]{{{DERIVED_KEY_CHARS}}}")


def derived_key_id(api_key: str) -> str | None:
    """The id of a key of the derived form (made since 2026-12-05), computed from the key
    alone; None for any other (an older key's id was random)."""
    if not _DERIVED_KEY.fullmatch(api_key):
        return None
    return "key_" + hashlib.sha256(_ID_DOMAIN + api_key.encode()).hexdigest()[:12]


def derived_account(api_key: str) -> str | None:
    """The ledger account of a key of the derived form (what settlement debits for it:
    ``user:`` + the pseudonym of its id); None for an older key."""
    key_id = derived_key_id(api_key)
    return None if key_id is None else pseudonym("user", key_id)


def key_tag(api_key: str) -> str:
    """What the verifier files a key's account under: a domain-separated SHA-256 of the key
    (the key itself is never written)."""
    return hashlib.sha256(_DOMAIN + api_key.encode()).hexdigest()[:32]


def account_change(before: str | None, now: str) -> str | None:
    """Why the account ``now`` named for a key is not the one named for it ``before``, or
    ``None`` (the same, or none remembered yet)."""
    if before is None or before == now:
        return None
    return (
        f"the registry named account {now} for LLM_MESH_API_KEY, but {before} before: a key's "
        "account never changes, so one of them is not this key's (its balance shown from "
        "another account's books); remove its line from ledger_seen.json only if the key "
        "was replaced"
    )


def key_account_finding(api_key: str, before: str | None, now: str) -> str | None:
    """Why the account ``now`` named for ``api_key`` is not its own: for a key of the
    derived form, any other than :func:`derived_account` (no first use trusted); for an
    older one, another than the one named ``before`` (:func:`account_change`). Any key's
    account is a ``user:`` one: another kind named for it (the ``pool`` a registry answers
    when it heard no key, ``mint``, an operator's) is a finding from the first use on
    (found 2026-12-07, review41d: an older key named the pool on first use was remembered
    so, and its statement then listed the pool's debits, which none judges, exit 0)."""
    if not now.startswith("user:"):
        return (
            f"the registry named account {now} for LLM_MESH_API_KEY, but a key pays from a "
            "user:... account (the pool pays for requests sent with no key): the balance and "
            "entries shown are not the key's (--account for your own)"
        )
    own = derived_account(api_key)
    if own is None:
        return account_change(before, now)
    if now == own:
        return None
    return (
        f"the registry named account {now} for LLM_MESH_API_KEY, but the key's own account is "
        f"{own} (a key made since 2026-12-05 names its account: user: + a hash of a hash of "
        "the key): the balance shown is another account's (--account for your own)"
    )
