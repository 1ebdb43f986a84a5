"""The receipt's Ed25519 CPU: OpenSSL (``cryptography``) against libsodium (PyNaCl), one run.

Method: in this process, on the bytes a receipt signs — a node's receipt
(``core/receipt.node_receipt_bytes``) and the gateway's countersignature of a one-part
receipt (``receipt_bytes``), their lengths printed — four operations, each timed over
``--iterations`` calls with ``time.process_time``, in ``--repeats`` rounds whose order of
the two libraries alternates: ``verify`` (``Ed25519PublicKey.verify`` against
``core/ed25519.PublicKey.verify``, what ``check_part`` calls) and ``sign``
(``Ed25519PrivateKey.sign`` against ``core/ed25519.Signer.sign``, what ``ReceiptSigner``
and ``NodeReceiptSigner`` call). Every round checks that both libraries give the same
signature bytes and that each verifies the other's. Reported: µs per call, best and median
over rounds, and cryptography / libsodium (medians, same run).

    .venv/bin/python benchmarks/bench_receipt_ed25519.py [--iterations 3000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _common import machine_line, write_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.ed25519 import PublicKey, Signer
from LLM_Mesh.core.receipt import (
    Part,
    PartStatus,
    ReceiptBody,
    b64url,
    node_receipt_bytes,
    receipt_bytes,
)

LIBS = ("cryptography", "libsodium")


def _messages(key: Ed25519PrivateKey) -> dict[str, bytes]:
    h = output_sha256("The answer is 42.")
    node = node_receipt_bytes("registry-0123456789abcdef", "node-abcdefghijklmnopqrstuvwxyz",
                              "req-0123456789abcdef0123", "gemma-3-270m", 12, 40, h)  # fmt: skip
    part = Part("node-abcdefghijklmnopqrstuvwxyz", b64url(bytes(32)), PartStatus.SIGNED, 12, 40,
                h, b64url(key.sign(node)))  # fmt: skip
    whole = receipt_bytes(ReceiptBody("registry-0123456789abcdef", "req-0123456789abcdef0123",
                                      "gemma-3-270m", 1_800_000_000_000, 12, 40, h, (part,)))  # fmt: skip
    return {"node_receipt": node, "countersign": whole}


def _timed(f: Callable[[], object], n: int) -> float:
    clock = time.process_time
    t0 = clock()
    for _ in range(n):
        f()
    return (clock() - t0) / n * 1e6


def one_round(
    key: Ed25519PrivateKey, data: bytes, n: int, order: tuple[str, ...]
) -> dict[str, float]:
    """µs per call of each (library, operation) on ``data``."""
    pub, ours, theirs = (
        key.public_key(),
        Signer(key),
        PublicKey(key.public_key().public_bytes_raw()),
    )
    sig = key.sign(data)
    if ours.sign(data) != sig or not theirs.verify(sig, data):
        raise SystemExit("libsodium and cryptography disagree: stop")
    pub.verify(ours.sign(data), data)
    ops: dict[str, dict[str, Callable[[], object]]] = {
        "cryptography": {"verify": lambda: pub.verify(sig, data), "sign": lambda: key.sign(data)},
        "libsodium": {"verify": lambda: theirs.verify(sig, data), "sign": lambda: ours.sign(data)},
    }
    out: dict[str, float] = {}
    for lib in order:
        for op, f in ops[lib].items():
            out[f"{lib} {op}"] = _timed(f, n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(__doc__)
    print(machine_line())
    key = Ed25519PrivateKey.generate()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for what, data in _messages(key).items():
        rows: dict[str, list[float]] = {}
        for r in range(args.repeats):
            order = LIBS if r % 2 == 0 else LIBS[::-1]
            for name, us in one_round(key, data, args.iterations, order).items():
                rows.setdefault(name, []).append(us)
        results[what] = {
            name: {"us_best": min(xs), "us_median": statistics.median(xs), "us_all": xs}
            for name, xs in rows.items()
        }
        print(f"\n{what} ({len(data)} bytes)   µs best / median")
        for name, xs in sorted(rows.items()):
            print(f"  {name:<22} {min(xs):>7.1f} / {statistics.median(xs):>7.1f}")
        for op in ("verify", "sign"):
            c, s = (results[what][f"{lib} {op}"]["us_median"] for lib in LIBS)
            print(f"  {op}: cryptography / libsodium = {c / s:.2f}x (medians, same run)")
    path = write_json("receipt_ed25519", {"params": vars(args), "results": results})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
