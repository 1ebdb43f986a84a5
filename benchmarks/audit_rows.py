"""The auditor's fast path (``core/ledger_audit.Auditor.rows``) on an in-memory ledger:
what ``ledger verify`` spends per entry once the rows are read, without I/O.

200,000 grants (``--entries``), a signed checkpoint every 1,000, fed in batches of 2,000
as ``ledger verify`` feeds them; the best of 3 (``--repeat``). With ``--clock``, the
verifier's clock and the keys' ``created`` are given (the time rules of
``core/ledger_time.py``, as ``ledger verify`` runs since 2026-12-05); a tree whose auditor
does not take them (the base) runs without. Prints the seconds.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/audit_rows.py [--clock]``, in each tree
compared, in turn.
"""

from __future__ import annotations

import argparse
import base64
import inspect
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.ledger_audit import Auditor, _Tree
from LLM_Mesh.core.ledger_entry import (
    ENTRY_FIELDS,
    GENESIS_PREV,
    MINT,
    Transfer,
    make_entry,
    pseudonym,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clock", action="store_true")
    args = ap.parse_args()
    n, user = args.entries, pseudonym("user", "a")
    t0 = int(time.time()) - 3600
    rows, tree, roots, prev = [], _Tree(), {}, GENESIS_PREV
    for seq in range(n):
        amount = 1 + seq % 7
        e, prev = make_entry(
            seq, (t0 + seq // 100) * 10**6, Transfer("grant", MINT, user, amount), prev
        )
        j = e.to_json()
        rows.append(tuple(j[f] for f in ENTRY_FIELDS))
        tree.push(prev)
        if (seq + 1) % 1000 == 0:
            roots[seq + 1] = tree.root()
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    pk = base64.b64encode(pub).decode()
    cps = []
    for size, root in roots.items():
        cp = sign_checkpoint(key, pub, "o", size, root, (t0 + 3000) * 10**6)
        cps.append({"tree_size": size, "root_hash": root.hex(), "note": cp.note, "public_key": pk})
    kw: dict[str, Any] = {}
    if args.clock and "now_us" in inspect.signature(Auditor).parameters:
        kw = {"created": {pk: t0 - 10}, "now_us": int(time.time() * 1e6)}
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        auditor = Auditor(cps, [pk], "o", **kw)
        for i in range(0, n, 2000):
            auditor.rows(rows[i : i + 2000])
        report = auditor.finish()
        best = min(best, time.perf_counter() - start)
        assert report.ok, report.findings[:2]
    print(f"{best:.3f}")


if __name__ == "__main__":
    main()
