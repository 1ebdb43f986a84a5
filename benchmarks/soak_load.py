"""The soak's clients (``benchmarks/soak.py``): a mix of good and bad requests, counted.

Each kind and what it must get: ``chat``, ``completion``, ``real`` (the gemma node) and
``stream``: 200 with an answer; ``leave``: a stream the client leaves after two chunks
(its own key, since what it costs is not an answer's); ``invalid`` (not JSON): 400;
``oversize`` (over 1 MiB): 413; ``unknown`` model: 404; ``dup``: one request id sent twice,
the second replayed (the same completion id); ``small`` (a key with a small balance): 200
until it is spent, then 402; ``anon`` (no key): 200, or 429 past the anonymous rate limit.
Anything else is a failure, kept with its time and answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

SIM, REAL = "mistral-7b", "gemma-3-270m"
BIG = 10**15  # µNT granted to the keys that must never run out
SMALL = 3_000  # µNT: a few dozen small requests, then 402


@dataclass
class Stats:
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    big_cost: int = 0  # mesh.cost of the big key's answers
    big_ok: int = 0
    small_ok: int = 0
    small_cost: int = 0

    def note(self, kind: str, status: int, bad: bool, info: Any = None) -> None:
        self.counts[(kind, status)] += 1
        if bad and len(self.failures) < 300:
            self.failures.append({"t": time.strftime("%H:%M:%S"), "kind": kind,
                                  "status": status, "info": str(info)[:300]})  # fmt: skip


def _body(model: str, kind: str, n: int) -> dict[str, Any]:
    if kind == "completion":
        return {"model": model, "prompt": f"soak {n}", "max_tokens": 8}
    return {"model": model, "messages": [{"role": "user", "content": f"soak {n}"}],
            "max_tokens": 6 if model == REAL else 12}  # fmt: skip


async def client(i: int, urls: list[str], keys: dict[str, str], stop_at: float, st: Stats,
                 real: bool) -> None:  # fmt: skip
    rng = random.Random(i)
    http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=3.0))
    kinds = ["chat", "stream", "completion", "leave", "invalid", "oversize", "unknown",
             "dup", "small", "anon"] + (["real"] if real and i < 2 else [])  # fmt: skip
    weights = [30, 20, 10, 8, 4, 1, 4, 5, 5, 5] + ([6] if real and i < 2 else [])
    n = 0
    try:
        while time.monotonic() < stop_at:
            n += 1
            url = urls[n % len(urls)]
            kind = rng.choices(kinds, weights)[0]
            auth = {"Authorization": f"Bearer {keys['big']}"}
            try:
                await one(http, url, kind, auth, keys, i * 1_000_000 + n, st)
            except httpx.HTTPError as exc:
                st.note(kind, -1, True, f"{url} {type(exc).__name__}: {exc}")
            await asyncio.sleep(rng.uniform(0.0, 0.05))
    finally:
        await http.aclose()


async def one(http: httpx.AsyncClient, url: str, kind: str, auth: dict[str, str],
              keys: dict[str, str], n: int, st: Stats) -> None:  # fmt: skip
    chat = url + "/v1/chat/completions"
    if kind in ("chat", "real", "completion"):
        model = REAL if kind == "real" else SIM
        path = "/v1/completions" if kind == "completion" else "/v1/chat/completions"
        r = await http.post(url + path, json=_body(model, kind, n), headers=auth)
        st.note(kind, r.status_code, r.status_code != 200, f"{url} {r.text[:200]}")
        if r.status_code == 200:
            st.big_ok += 1
            st.big_cost += int(r.json()["mesh"]["cost"])
    elif kind in ("stream", "leave"):
        body = {**_body(SIM, "chat", n), "stream": True}
        if kind == "leave":  # its own key: what a stream left early costs is not an answer's
            auth = {"Authorization": f"Bearer {keys['leaver']}"}
        async with http.stream("POST", chat, json=body, headers=auth) as r:
            chunks = 0
            last = ""
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    chunks += 1
                    if line != "data: [DONE]":
                        last = line
                    if kind == "leave" and chunks >= 2:
                        break
            ok = r.status_code == 200 and (kind == "leave" or '"usage"' in last)
            st.note(kind, r.status_code, not ok, f"{url} chunks={chunks} last={last[:200]}")
            if kind == "stream" and ok:
                meta = json.loads(last[6:]).get("mesh") or {}
                st.big_ok += 1
                st.big_cost += int(meta.get("cost") or 0)
    elif kind == "invalid":
        r = await http.post(
            chat, content=b"{not json", headers={**auth, "content-type": "application/json"}
        )
        st.note(kind, r.status_code, r.status_code != 400, r.text[:200])
    elif kind == "oversize":
        big = json.dumps({"model": SIM, "messages": [{"role": "user", "content": "x" * (1 << 20)}]})
        r = await http.post(
            chat, content=big.encode(), headers={**auth, "content-type": "application/json"}
        )
        st.note(kind, r.status_code, r.status_code != 413, r.text[:200])
    elif kind == "unknown":
        r = await http.post(chat, json=_body("no-such-model-xyz", "chat", n), headers=auth)
        st.note(kind, r.status_code, r.status_code not in (400, 404), r.text[:200])
    elif kind == "dup":
        rid = f"soak-dup-{n}"
        h = {**auth, "X-Request-Id": rid}
        r1 = await http.post(chat, json=_body(SIM, "chat", n), headers=h)
        r2 = await http.post(chat, json=_body(SIM, "chat", n), headers=h)
        same = (
            r1.status_code == 200 and r2.status_code == 200 and r1.json()["id"] == r2.json()["id"]
        )
        st.note(
            kind, r2.status_code, not same, f"{r1.status_code} {r2.status_code} {r2.text[:150]}"
        )
        if r1.status_code == 200:
            st.big_ok += 1
            st.big_cost += int(r1.json()["mesh"]["cost"])
    elif kind == "small":
        r = await http.post(chat, json=_body(SIM, "chat", n),
                            headers={"Authorization": f"Bearer {keys['small']}"})  # fmt: skip
        st.note(kind, r.status_code, r.status_code not in (200, 402), r.text[:200])
        if r.status_code == 200:
            st.small_ok += 1
            st.small_cost += int(r.json()["mesh"]["cost"])
    elif kind == "anon":
        r = await http.post(chat, json=_body(SIM, "chat", n))
        st.note(kind, r.status_code, r.status_code not in (200, 429), r.text[:200])
