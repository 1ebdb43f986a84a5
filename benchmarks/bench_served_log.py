"""The served log's costs, in process: a node's line a request, and the statement's look-up
an entry of the log.

- ``write``: ``ServedLog.write`` of a record as the node writes it at a request's end
  (``node/telemetry.NodeRequest.ended``): one JSON line and one ``os.write`` on an
  ``O_APPEND`` file in a throw-away folder, rotation included (``max_bytes`` 32 MiB, the
  default), a MACed request's record and a signed one's (the signature and body hash kept).
- ``watch``: ``ServedWatch.rows`` (``ledger statement --operator --served``), what it adds
  to each entry of the whole log the audit reads: a key look-up per entry, against the
  records of ``--records`` served requests; entries with gateway-made ids and client-chosen
  ``c-…~`` keys, half of them a record's.

Wall time (``time.perf_counter``), ``--rounds`` rounds, the median and the lowest round
printed. Nothing on a socket, no node or registry, nothing SIMULATED.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_served_log.py [--calls 50000]
        [--entries 200000] [--records 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine_line

from LLM_Mesh.cli.ledger_served import ServedWatch
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS
from LLM_Mesh.core.served import Served, ledger_suffix
from LLM_Mesh.node.served_log import ServedLog


def _record(n: int, signed: bool) -> Served:
    return Served(
        time_ms=1_764_900_000_000 + n, node="node-" + "k" * 26, request_id=f"req-{n:032x}",
        model="gemma-3-270m", prompt_tokens=120, completion_tokens=64, outcome="ok",
        stream=True, gateway="reg-" + "g" * 26, gateway_ms=1_764_900_000_000 + n,
        auth="signature" if signed else "mac", signature="s" * 86 if signed else "",
        body_sha256="b" * 64 if signed else "",
    )  # fmt: skip


def bench_write(calls: int, signed: bool) -> float:
    """µs a record written."""
    records = [_record(n, signed) for n in range(calls)]
    with tempfile.TemporaryDirectory() as d:
        log = ServedLog(Path(d) / "served.jsonl")
        start = time.perf_counter()
        for r in records:
            log.write(r)
        took = time.perf_counter() - start
        log.close()
    return took / calls * 1e6


def bench_watch(entries: int, records: int) -> float:
    """µs an entry of the log the watch adds."""
    served = [_record(n * 7919 % (1 << 60), False) for n in range(records)]
    watch = ServedWatch(served)
    rows = []
    for n in range(entries):
        if n % 2:
            rid = served[n // 2 % records].request_id
            if n % 4 == 1:
                rid = f"c-{'c' * 24}~{ledger_suffix(rid)}.0badc0de"
        else:
            rid = f"req-{(n + (1 << 62)):032x}"
        row = (n, 0, "settle", "user:x", "operator:y", 5, rid, "ab" * 32, "00" * 32, "11" * 32)
        assert len(row) == len(ENTRY_FIELDS)
        rows.append(row)
    batches = [rows[i : i + 10_000] for i in range(0, len(rows), 10_000)]
    start = time.perf_counter()
    for b in batches:
        watch.rows(b)
    return (time.perf_counter() - start) / entries * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=50_000)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print(machine_line())
    print(f"pid {os.getpid()}; {a.rounds} rounds")
    out: dict[str, list[float]] = {"write (MAC)": [], "write (signed)": [], "watch": []}
    for _ in range(a.rounds):
        out["write (MAC)"].append(bench_write(a.calls, False))
        out["write (signed)"].append(bench_write(a.calls, True))
        out["watch"].append(bench_watch(a.entries, a.records))
    for name, values in out.items():
        unit = "a record" if name.startswith("write") else "an entry"
        print(
            f"{name:15} median {statistics.median(values):7.2f} µs {unit}, "
            f"lowest {min(values):7.2f}"
        )


if __name__ == "__main__":
    main()
