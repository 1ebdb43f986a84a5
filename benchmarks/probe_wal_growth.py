"""Does the SQLite store's write-ahead log (``registry.db-wal``) stay bounded under
sustained load?

Method: a local mesh (registry + gateway on the default SQLite store, one ``sim`` node:
SIMULATED, ``max_tokens`` 1, so the HTTP path and the store's writes are what runs),
a client API key with a balance that never runs out (settlement charges every request),
then ``--concurrency`` clients send ``POST /v1/chat/completions`` back to back for
``--seconds``. Every second the sizes of ``registry.db`` and ``registry.db-wal`` are
read; printed: requests answered (and how many were not 200: a ``sim`` node at capacity
answers 429, and the gateway writes its reservation and release for those too), the WAL's
size over time (max, at the end, and its growth over the run's second half, in MB per
1,000 answers), then the WAL's size ``--after-s`` seconds after the load stopped.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_wal_growth.py [--seconds 60]
        [--concurrency 10] [--after-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
from _common import local_mesh, machine_line, make_api_key

BODY = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _load(url: str, key: str, seconds: float, concurrency: int, db: Path) -> dict[str, Any]:
    wal = db.with_name(db.name + "-wal")
    done = [0]
    errors: dict[int, int] = {}
    stop = time.monotonic() + seconds
    samples: list[tuple[float, int, int, int]] = []  # (t, requests, db bytes, wal bytes)

    async def client(c: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            r = await c.post(url + "/v1/chat/completions", json=BODY)
            done[0] += 1
            if r.status_code != 200:
                errors[r.status_code] = errors.get(r.status_code, 0) + 1

    async def sample() -> None:
        t0 = time.monotonic()
        while time.monotonic() < stop:
            samples.append((time.monotonic() - t0, done[0], _size(db), _size(wal)))
            await asyncio.sleep(1.0)

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0) as c:
        await asyncio.gather(sample(), *(client(c) for _ in range(concurrency)))
    return {"requests": done[0], "errors": errors, "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--after-s", type=float, default=10.0)
    args = ap.parse_args()
    print(machine_line())
    with local_mesh(model="mistral-7b", engine="sim") as mesh:
        home = Path(mesh.settings.home)
        db = home / "registry.db"
        key = make_api_key(home)
        res = asyncio.run(_load(mesh.registry_url, key, args.seconds, args.concurrency, db))
        time.sleep(args.after_s)
        after = _size(db.with_name(db.name + "-wal"))
    samples = res["samples"]
    mb = 1e6
    for t, n, dbb, walb in samples[:: max(1, len(samples) // 12)]:
        print(f"  t={t:5.1f} s  answers {n:6d}  db {dbb / mb:7.1f} MB  wal {walb / mb:7.1f} MB")
    half = samples[len(samples) // 2]
    last = samples[-1]
    growth = (last[3] - half[3]) / mb / max(1, (last[1] - half[1]) / 1000)
    print(
        f"{res['requests']} answers (not 200: {res['errors'] or 'none'}) in {args.seconds:.0f} s; "
        f"WAL max {max(s[3] for s in samples) / mb:.1f} MB, at the end {last[3] / mb:.1f} MB, "
        f"second half {growth:+.2f} MB per 1,000 answers; {args.after_s:.0f} s after the load "
        f"{after / mb:.1f} MB; db {last[2] / mb:.1f} MB; pid {os.getpid()}"
    )


if __name__ == "__main__":
    main()
