"""Which ledger account a registry says an API key pays from, remembered by the verifier.

``GET /v1/balance`` names the caller's account (``user:`` + a hash of the key's id, which
the registry chose and the key does not carry), and ``llm-mesh ledger verify`` checks that
account's balance against the entries. A verifier cannot derive the account from its key,
so a registry could name another account there (one whose books add up) while it debits
the user's own: the balance shown "matches the ledger" and every check passes (found
2026-12-05). The verifier keeps the first account named for its key (trust on first use,
in ``ledger_seen.json``, under :func:`key_tag`, never the key) and names any other later
(:func:`account_change`). Pure.
"""

from __future__ import annotations

import hashlib

__all__ = ["account_change", "key_tag"]

_DOMAIN = b"llm-mesh/ledger-seen-key/v1\x00"


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
