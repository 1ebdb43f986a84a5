"""``account.make_receipt`` alone, counted: instructions (valgrind's callgrind), Python calls
(cProfile) and time (``time.perf_counter``) a call, per checkout, passes interleaved.

Method (perf44's "The account stage alone", docs/benchmarks.md, made a script by money45):
for each checkout given, a child process with that checkout first on ``PYTHONPATH`` builds
``--calls`` tallies of one whole non-stream answer as the send stage leaves it (one node
part without a node receipt, so no Ed25519 verify; a settled payer; fixed keys and clock)
and calls ``account.make_receipt`` on each (the part checked, priced, matched, the receipt
countersigned, its JSON). The job, the node table and the payment are stand-ins with the
fields the stage reads (no gateway, no store, no timers).

- **instructions** (``--rounds`` rounds, the checkouts in turn, reversed every other round):
  the child under ``valgrind --tool=callgrind``, once with the calls and once skipping
  them (the same start-up, imports and tallies); (the first's total − the second's) ÷
  ``--calls``. ``PYTHONHASHSEED=0`` in every child.
- **calls**: cProfile's count of the calls made by ``--calls`` calls, ÷ ``--calls``; the
  functions whose count a call differs between the first two checkouts are listed.
- **time**: ``--time-rounds`` rounds, each checkout's child timing ``--batches`` batches of
  ``--calls`` calls (``perf_counter``), its median µs a call; the median over rounds.

Every child prints the SHA-256 of its receipt's JSON: every checkout must make the same
receipt (checked, printed).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_account_instructions.py TREE [TREE ...] \\
        [--calls 2000] [--rounds 3] [--time-rounds 5] [--batches 5] [--no-valgrind]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import hashlib, json, statistics, sys, time
from types import SimpleNamespace as NS
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.pricing import Price
from LLM_Mesh.core.receipt import ReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys, Observed
from LLM_Mesh.registry import account
from LLM_Mesh.registry.job import Tally

mode, calls = sys.argv[1], int(sys.argv[2])
batches = int(sys.argv[3]) if len(sys.argv) > 3 else 1
signer = ReceiptSigner(Ed25519PrivateKey.from_private_bytes(b"\x02" * 32), lambda: 1764900000.123)
RID, MODEL, NODE = "req-0123456789abcdef0123456789", "mistral-7b", "node-0123456789abcdef"
digest = output_sha256("word " * 40)
rt = NS(receipts=signer, node_keys=NodeKeys(), table=NS(hosted=lambda n, m: None),
        clock=lambda: 100.0, metrics=None, unpaid=None, wall_clock=lambda: 1764900000.123)


class Job:
    forwarded_id = request_id = settle_key = logged_id = RID
    node_request_id = ""
    model = MODEL
    price = Price(100, 200)
    estimate = 10**6
    prompt_bound = 500
    client_id_hash = ""

    def prompt_usual(self):
        return 10


job, payment = Job(), NS(payer="user:abc", fee_bps=500)


def tally():
    t = Tally()
    t.node_id, t.prompt_tokens, t.completion_tokens, t.attempts = NODE, 12, 40, 1
    t.output_sha256 = digest
    t.outputs.append(Observed(NODE, 12, 40, digest))  # no node receipt: no verify
    return t


first = account.make_receipt(rt, job, tally(), payment)  # (warm: the same in every mode)
print(hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest())
make = account.make_receipt
if mode in ("run", "skip"):
    tallies = [tally() for _ in range(calls)]
    if mode == "run":
        for t in tallies:
            make(rt, job, t, payment)
elif mode == "profile":
    import cProfile
    tallies = [tally() for _ in range(calls)]
    prof = cProfile.Profile()
    prof.enable()
    for t in tallies:
        make(rt, job, t, payment)
    prof.disable()
    per = {}  # by name, summed (the raw entries: two dataclasses' __init__ are both
    # "<string>:__init__", which pstats' table would keep one of)
    for entry in prof.getstats():
        code = entry.code
        if isinstance(code, str):
            if "disable" in code:
                continue
            name = "~:" + code
        else:
            name = "/".join(code.co_filename.split("/")[-2:]) + ":" + code.co_name
        per[name] = per.get(name, 0) + entry.callcount / calls
    print(json.dumps(per))
elif mode == "time":
    out = []
    for _ in range(batches):
        tallies = [tally() for _ in range(calls)]
        t0 = time.perf_counter()
        for t in tallies:
            make(rt, job, t, payment)
        out.append((time.perf_counter() - t0) / calls * 1e6)
    print(statistics.median(out))
"""


def callgrind_total(text: str) -> int:
    """The instructions a callgrind output file counts (its ``summary:`` or ``totals:``)."""
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError("no summary: or totals: line in callgrind's output")


def child(tree: str, *args: str, valgrind: Path | None = None) -> list[str]:
    env = dict(os.environ, PYTHONPATH=tree, PYTHONHASHSEED="0")
    cmd = [sys.executable, "-c", CHILD, *args]
    if valgrind is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind}", *cmd]
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def instructions(tree: str, calls: int, out: Path) -> tuple[float, str]:
    """(instructions a call, the receipt's SHA-256) of one pair of runs under callgrind."""
    ran, skipped = out / "run.out", out / "skip.out"
    sha = child(tree, "run", str(calls), valgrind=ran)[0]
    child(tree, "skip", str(calls), valgrind=skipped)
    total = callgrind_total(ran.read_text()) - callgrind_total(skipped.read_text())
    return total / calls, sha


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time-rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--no-valgrind", action="store_true")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees]
    shas: dict[str, set[str]] = {t: set() for t in trees}
    ir: dict[str, list[float]] = {t: [] for t in trees}
    if not args.no_valgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind not found (--no-valgrind: calls and time only)")
        with tempfile.TemporaryDirectory(prefix="account-callgrind-") as d:
            for r in range(args.rounds):
                for tree in trees if r % 2 == 0 else trees[::-1]:
                    per, sha = instructions(tree, args.calls, Path(d))
                    ir[tree].append(per)
                    shas[tree].add(sha)
                    print(f"instructions round {r + 1} {tree}: {per:,.0f} a call", flush=True)
    calls: dict[str, dict[str, float]] = {}
    for tree in trees:
        sha, profile = child(tree, "profile", str(args.calls))
        shas[tree].add(sha)
        calls[tree] = json.loads(profile)
    us: dict[str, list[float]] = {t: [] for t in trees}
    for r in range(args.time_rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            sha, median = child(tree, "time", str(args.calls), str(args.batches))
            shas[tree].add(sha)
            us[tree].append(float(median))
    for tree in trees:
        line = f"{tree}: "
        if ir[tree]:
            line += (f"instructions a call median {statistics.median(ir[tree]):,.0f} (range "
                     f"{min(ir[tree]):,.0f} … {max(ir[tree]):,.0f}); ")  # fmt: skip
        line += (f"Python calls a call {sum(calls[tree].values()):.1f}; µs a call median "
                 f"{statistics.median(us[tree]):.2f} (range {min(us[tree]):.2f} … "
                 f"{max(us[tree]):.2f}); receipt sha256 {sorted(shas[tree])}")  # fmt: skip
        print(line)
    if len(trees) >= 2:
        a, b = calls[trees[0]], calls[trees[1]]
        diff = {k: a.get(k, 0) - b.get(k, 0) for k in a.keys() | b.keys()}
        print(f"calls a call, {trees[0]} − {trees[1]}:")
        for name, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[: args.top]:
            if abs(d) >= 0.01:
                print(f"  {d:+.2f}  {name}")
    one = {s for t in trees for s in shas[t]}
    print("every checkout made the same receipt:", len(one) == 1)


if __name__ == "__main__":
    main()
