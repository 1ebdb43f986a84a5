"""The largest answer each ledger endpoint serves to ``llm-mesh ledger verify``, in bytes.

What the verifier's bounds on one registry answer and one export line
(``cli/ledger_http.MAX_ANSWER``, ``MAX_EXPORT_LINE``) are sized from. Method: a SQLite store in a temporary directory gets ``MAX_PAGE`` (10,000)
entries at their largest (a 32-character kind, 105-character accounts, the largest
amount, a receipt hash and a 128-byte request id of control characters, each sent as a
6-byte JSON escape), then 10,000 signed checkpoints at 10-digit sizes (a billion-entry
ledger), each with ``--witnesses`` cosignature lines under ``--name-len``-character witness
names (the default: ``witness/state.default_name``'s length), written in bulk. The registry
app (httpx's ASGI transport) then serves ``GET /v1/ledger?limit=10000`` (``--page``'s
most), ``GET /v1/ledger/checkpoints`` at the verifier's ``CHECKPOINT_PAGE`` and at the
registry's most (10,000), the export (its longest line) and
the key list; the length of each body (decoded) is printed, and that of a proof of 80
hashes (more than an RFC 9162 proof in a tree of ``2**40`` entries holds), as the proof
endpoints write it.

Run: ``.venv/bin/python benchmarks/ledger_page_sizes.py [--witnesses 3] [--name-len 33]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert

from LLM_Mesh.cli.ledger_http import CHECKPOINT_PAGE
from LLM_Mesh.config import Settings
from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.ledger_entry import MAX_AMOUNT, MINT, Transfer
from LLM_Mesh.core.witness import cosign, witness_key
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger_api import MAX_PAGE
from LLM_Mesh.registry.ledger_signer import public_key_text


def _entry(i: int) -> Transfer:
    a, b = f"user:{i:0>96}", f"operator:{i:0>96}"
    return Transfer("k" * 32, a, b, MAX_AMOUNT, "\x01" * 128, "f" * 64)


async def fill(app: object, origin: str, witnesses: int, name_len: int) -> None:
    rt = app.state.runtime  # type: ignore[attr-defined]
    ledger = rt.ledger
    await ledger.append([Transfer("grant", MINT, f"user:{0:0>96}", 1)])
    for start in range(0, MAX_PAGE, 1000):
        await ledger.append([_entry(i) for i in range(start, start + 1000)])
    key = Ed25519PrivateKey.generate()
    raw = base64.b64decode(public_key_text(key))
    wkeys = [Ed25519PrivateKey.generate() for _ in range(witnesses)]
    names = [f"{w}".rjust(name_len, "w") for w in range(witnesses)]
    now = int(time.time())
    cps, cosigs = [], []
    for n in range(MAX_PAGE):
        size = 1_000_000_000 + n
        cp = sign_checkpoint(key, raw, origin, size, os.urandom(32), now * 1_000_000)
        cps.append({"tree_size": size, "root_hash": cp.root_hash.hex(), "time_us": cp.time_us,
                    "public_key": public_key_text(key), "note": cp.note})  # fmt: skip
        for wk, name in zip(wkeys, names, strict=True):
            line = cosign(wk, name, cp.note, now)
            cosigs.append({"tree_size": size, "witness": witness_key(wk, name).vkey,
                           "time_s": now, "line": line})  # fmt: skip
    engine = await ledger.engine()
    async with engine.begin() as conn:
        await conn.execute(insert(tables.ledger_checkpoints), cps)
        if cosigs:
            await conn.execute(insert(tables.ledger_cosignatures), cosigs)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--witnesses", type=int, default=3)
    ap.add_argument("--name-len", type=int, default=33)
    ap.add_argument("--origin", default="llm-mesh.local/ledger")
    args = ap.parse_args()
    print(f"# ledger_page_sizes  load={os.getloadavg()[0]:.2f}  witnesses={args.witnesses} "
          f"name_len={args.name_len} origin={args.origin!r}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp), database_url=f"sqlite:///{tmp}/r.db", ledger_origin=args.origin,
            pool_daily_budget=0, ledger_checkpoint_every=10**9, ledger_checkpoint_interval_s=10**6,
        )  # fmt: skip  # no checkpoint of the registry's own among the 10,000
        app = create_registry_app(settings)
        async with app.router.lifespan_context(app):
            await fill(app, args.origin, args.witnesses, args.name_len)
            t = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=t, base_url="http://r", timeout=600) as c:
                cps = "/v1/ledger/checkpoints"
                asks = [
                    ("entries", "/v1/ledger", {"after": 0, "limit": MAX_PAGE}),  # not the grant
                    ("checkpoints", cps, {"limit": CHECKPOINT_PAGE}),
                    ("checkpoints", cps, {"limit": MAX_PAGE}),
                    ("keys", "/v1/ledger/keys", {}),
                ]
                for what, path, params in asks:
                    r = await c.get(path, params=params)
                    r.raise_for_status()
                    n = len(r.json()["data"])
                    print(f"{what:12} {len(r.content):>12,} bytes  ({n} items)")
                r = await c.get("/v1/ledger/export")
                longest = max(map(len, r.content.splitlines()))
                print(f"{'export line':12} {longest:>12,} bytes  (the longest)")
    # a proof's size does not depend on the store: the largest, built as the endpoint does
    hashes = [os.urandom(32).hex() for _ in range(2 * 40)]
    proof = {"object": "ledger.consistency_proof", "first": 1 << 39, "second": 1 << 40,
             "first_root": hashes[0], "second_root": hashes[1], "proof": hashes}  # fmt: skip
    print(f"{'proof':12} {len(json.dumps(proof)):>12,} bytes  (80 hashes)")


if __name__ == "__main__":
    asyncio.run(main())
