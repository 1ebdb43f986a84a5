"""``GET /v1/receipts/{hash}`` attacked (review38, 2026-12-06): the payer's receipt of a
cut stream (money37) read by nobody else, whatever the hash's spelling or the bearer; no
oracle in the answers; a malformed or huge hash costs no store read. The real app with
fake nodes, a stream really cut (``test_cut_receipts.py``'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.access import ANONYMOUS_TOKEN
from LLM_Mesh.registry.store_cut_receipts import CutReceipt
from tests.registry.helpers import running
from tests.registry.signing_nodes import NODE_A, NODE_B
from tests.registry.test_access import bearer
from tests.registry.test_charge import new_user, register, settled, settlement
from tests.registry.test_cut_receipts import _continued_then_cut_nodes, _cut_at_x, _stored


async def test_nobody_but_the_payer_and_the_admin_reads_a_cut_receipt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path, nodes=_continued_then_cut_nodes(), max_attempts=3) as h:
        await register(h, NODE_A, "alice")
        await register(h, NODE_B, "bob", continuation=True)
        key, _ = await new_user(h, 10**6)
        stranger, _ = await new_user(h, 10**6)
        await _cut_at_x(h, key)
        await settled(settlement(h))
        row = await _stored(h)
        url = f"/v1/receipts/{row.receipt_hash}"
        assert (await h.client.get(url, headers=bearer(key))).status_code == 200

        reads: list[str] = []
        real = h.store.cut_receipt

        async def counted(receipt_hash: str) -> CutReceipt | None:
            reads.append(receipt_hash)
            return await real(receipt_hash)

        monkeypatch.setattr(h.store, "cut_receipt", counted)

        async def status(path: str, headers: dict[str, str]) -> tuple[int, Any]:
            r = await h.client.get(path, headers=headers)
            return r.status_code, r.json()

        # nobody else: another key, no key, the anonymous bearer, an empty bearer
        for headers in (bearer(stranger), {}, bearer(ANONYMOUS_TOKEN)):
            code, body = await status(url, headers)
            assert code == 404 and body["error"]["code"] == "unknown_receipt", (headers, body)
        code, body = await status(url, {"Authorization": ""})  # not a bearer: as on /v1
        assert code == 401 and body["error"]["code"] == "invalid_api_key", body
        # the stranger's answer is the one of a hash never stored (no oracle in the body)
        never = "f" * 64
        _, theirs = await status(url, bearer(stranger))
        _, none = await status(f"/v1/receipts/{never}", bearer(stranger))
        assert (
            theirs["error"]["message"].replace(row.receipt_hash, never)
            == (none["error"]["message"])
        )
        # no other spelling of the hash reaches it, not even for its payer, and none costs a
        # store read: upper case, a newline, a space, a 65th character, percent-encoded, half
        reads.clear()
        spellings = [
            row.receipt_hash.upper(),
            row.receipt_hash + "%0A",
            "%20" + row.receipt_hash,
            row.receipt_hash + "0",
            "".join(f"%{ord(ch):02x}" for ch in row.receipt_hash[:8]) + row.receipt_hash[8:],
            row.receipt_hash[:32],
            "0" * 30_000,  # a huge one: refused before any store read
        ]
        for spelled in spellings[:-3]:
            code, _ = await status(f"/v1/receipts/{spelled}", bearer(stranger))
            assert code == 404, spelled
        for spelled in spellings:
            code, _ = await status(f"/v1/receipts/{spelled}", bearer(key))
            # percent-encoded hex is the hash itself (the path is decoded): the payer's
            expected = 200 if spelled == spellings[4] else 404
            assert code == expected, spelled[:80]
        assert reads == [row.receipt_hash]  # only the percent-encoded spelling, decoded
