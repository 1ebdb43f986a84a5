"""The layouts of receipts of versions 1 to 3: verified, never signed.

Receipts made before version 4 (``core/receipt.py``'s docstring: version 3 before
2026-12-06, its fees rounded down; version 2 before 2026-12-05, no money; version 1 before
that, no client id either) are still read by every verifier (``receipt verify``,
``ledger verify --receipt``, ``ledger statement``: a charge under a version 1 or 2 receipt
is said ``CANNOT BE CHECKED``). Their bytes are laid out here, and only here:
:func:`old_receipt_bytes` and :class:`OldReceipt` (what ``core/receipt_verify.parse_receipt``
makes of one). ``core/receipt.py``, which the gateway signs with, lays out version 4 alone
(``receipt_bytes`` takes no version; a :class:`~LLM_Mesh.core.receipt.Receipt` of another
version has no bytes to sign), and an import-linter contract keeps the registry and the
node from importing this module (found 2026-12-07, money43: a registry's own code could
still lay out a version 1 or 2 receipt, which signs no amounts, and sign it).

Pure (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass

from LLM_Mesh.core.identity import DOMAIN, MessageKind
from LLM_Mesh.core.receipt import Receipt, ReceiptBody, _layout

__all__ = ["OLD_VERSIONS", "OldReceipt", "old_receipt_bytes"]

OLD_VERSIONS = (1, 2, 3)  # verified only
RECEIPT_DOMAIN = DOMAIN + MessageKind.RECEIPT.value.encode("ascii") + b"\x00"  # version 1
RECEIPT_V2_DOMAIN = DOMAIN + MessageKind.RECEIPT_V2.value.encode("ascii") + b"\x00"
RECEIPT_V3_DOMAIN = DOMAIN + MessageKind.RECEIPT_V3.value.encode("ascii") + b"\x00"
_DOMAINS = {1: RECEIPT_DOMAIN, 2: RECEIPT_V2_DOMAIN, 3: RECEIPT_V3_DOMAIN}


def old_receipt_bytes(body: ReceiptBody, version: int) -> bytes:
    """The bytes a registry signed for a receipt of ``version`` 3 (``body.money``: what a
    settled request was charged, ``None``: not settled), 2 (no money) or 1 (no client id
    either: ``body.client_id_hash`` ""): what a verifier checks its signature against."""
    if version not in _DOMAINS or (version == 1 and body.client_id_hash):
        raise ValueError(f"receipt version {version} with client_id_hash {body.client_id_hash!r}")
    return _layout(_DOMAINS[version], body, version)


@dataclass(frozen=True, slots=True, kw_only=True)
class OldReceipt(Receipt):
    """A receipt of version 1, 2 or 3, as read: its bytes are :func:`old_receipt_bytes`."""

    def signed_bytes(self) -> bytes:
        return old_receipt_bytes(self, self.version)
