"""Signed receipts on the hot path: the node's signature, the gateway's check and countersignature.

Method (one process, one run; the box is shared, so compare the ratios):

1. **per operation** (``time.perf_counter``; the best of ``--repeat`` rounds of
   ``--iterations`` calls each, as ``timeit`` does, every operation once per round so a
   burst of load hits them all), for answers of 16, 256 and 1,024 tokens (a word each):

   - node: SHA-256 of the answer's text + one Ed25519 signature (``NodeReceiptSigner.sign``);
   - gateway, whole answer: the text's SHA-256 (send stage) + the node's receipt checked
     (one Ed25519 verify, ``check_part``) + the countersignature (one Ed25519 signature and
     one SHA-256 of its bytes) + its JSON form and the ``X-Mesh-Receipt`` header (base64url);
   - gateway, stream: the same, but the text comes from parsing the node's ``data:`` lines
     once at its final chunk (``stream_text``: one ``json.loads`` per token), no header;
   - baselines measured beside them: the gateway's existing signature of each forwarded
     request (``GatewaySigner.headers``), one ``json.loads`` + ``json.dumps`` of the
     whole answer (what the gateway already does to every non-stream answer), and one
     raw Ed25519 sign and verify by ``cryptography`` (OpenSSL), and the same by libsodium
     (``core/ed25519.py``, what the receipt's signers and checks use; side by side, one
     run: ``bench_receipt_ed25519.py``).

2. **through the real gateway, in process** (the registry app over httpx's ASGI transport
   → the real pipeline → a MockTransport node that signs a receipt per request, as a
   node does): requests with the gateway's receipts on (the default) and off
   (``runtime.receipts = None``: the node still signs, the gateway neither checks nor
   countersigns), in pairs (one request of each arm, alternating which goes first, so a
   burst of load on the shared box hits both); p50/p90 wall time per request of each arm
   and the median of the paired differences, whole answers and streams (``--tokens``).
   The difference is the gateway's added latency from receipts.

Run: ``.venv/bin/python benchmarks/bench_receipts.py [--iterations 200] [--repeat 20] [--requests 2000] [--tokens 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from _common import log, machine_line, pct, write_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.answer_text import answer_text, output_sha256, stream_text
from LLM_Mesh.core.ed25519 import PublicKey, Signer
from LLM_Mesh.core.gateway_auth import GatewaySigner
from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.core.receipt import NodeReceiptSigner, ReceiptSigner, encode_header
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_auth import Grant, VerifiedRegistration

MODEL = "gemma-3-270m"
NODE = NodeReceiptSigner(Ed25519PrivateKey.generate())
REGISTRY_KEY = Ed25519PrivateKey.generate()
GATEWAY = GatewaySigner(REGISTRY_KEY, time.time)
RECEIPTS = ReceiptSigner(REGISTRY_KEY, time.time)


def words(n: int) -> list[str]:
    return [f" w{i % 97}" for i in range(n)]


def answer(n: int) -> dict[str, Any]:
    text = "".join(words(n))
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        "mesh": {"node_id": NODE.node_id, "model": MODEL},
    }  # fmt: skip


def stream_lines(n: int) -> list[str]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return [
        "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": w},
                                                    "finish_reason": None}]})
        for w in words(n)
    ]  # fmt: skip


def node_receipt(request_id: str, n: int, text: str) -> dict[str, Any]:
    return NodeReceiptSigner.sign(
        NODE, registry_id=RECEIPTS.registry_id, request_id=request_id, model=MODEL,
        prompt_tokens=12, completion_tokens=n, output_sha256=output_sha256(text),
    )  # fmt: skip


def best_us(fns: dict[str, Callable[[], object]], iterations: int, repeat: int) -> dict[str, float]:
    """µs per call of each function: the best of ``repeat`` rounds of ``iterations`` calls,
    the functions interleaved within each round (a burst of load hits them all alike)."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(iterations):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / iterations)
    return {name: t * 1e6 for name, t in best.items()}


def measure(n: int, iterations: int, repeat: int) -> dict[str, Any]:
    """Per-operation costs for an answer of ``n`` tokens (see the module docstring)."""
    data = answer(n)
    text = answer_text(data)
    lines = stream_lines(n)
    claim = node_receipt("req-1", n, text)
    keys = NodeKeys()
    raw = json.dumps(data).encode()

    def node_side() -> object:
        return node_receipt("req-1", n, text)

    def gateway(digest: str) -> dict[str, Any]:
        obs = Observed(NODE.node_id, 12, n, digest, claim)
        part = check_part(obs, registry_id=RECEIPTS.registry_id, request_id="req-1",
                          model=MODEL, keys=keys)  # fmt: skip
        receipt, h = RECEIPTS.countersign("req-1", MODEL, 12, n, digest, [part])
        return receipt.to_json(h)

    def gateway_whole() -> object:
        return encode_header(gateway(output_sha256(answer_text(data))))

    def gateway_stream() -> object:
        return gateway(output_sha256(stream_text(lines)[0]))

    def forward_sign() -> object:
        return GATEWAY.headers(NODE.node_id, "req-1", "/v1/chat/completions", "0" * 64)

    message = b"x" * 256
    signature = REGISTRY_KEY.sign(message)
    public = REGISTRY_KEY.public_key()

    fns: dict[str, Callable[[], object]] = {
        "node_sign_us": node_side,
        "gateway_whole_us": gateway_whole,
        "gateway_stream_us": gateway_stream,
        "stream_parse_us": lambda: stream_text(lines),
        "forward_sign_us": forward_sign,
        "json_roundtrip_us": lambda: json.dumps(json.loads(raw)),
        "raw_sign_us": lambda: REGISTRY_KEY.sign(message),
        "raw_verify_us": lambda: public.verify(signature, message),
    }
    sodium, sodium_public = Signer(REGISTRY_KEY), PublicKey(public.public_bytes_raw())
    fns["sodium_sign_us"] = lambda: sodium.sign(message)  # what the receipt's signers call
    fns["sodium_verify_us"] = lambda: sodium_public.verify(signature, message)
    return {"tokens": n, **best_us(fns, iterations, repeat)}


def per_operation(iterations: int, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for n in (16, 256, 1024):
        rows.append(measure(n, iterations, repeat))
        log(f"  per operation, {n} tokens: done")
    return rows


# --- through the real gateway, in process ----------------------------------------------


class TrustingNodeAuth:
    """Node messages unchecked (the benchmark registers its mock node directly)."""

    def check_registration(self, headers: Mapping[str, str], body: bytes) -> VerifiedRegistration:
        return VerifiedRegistration(node_id=None, public_key=None, seq=0, operator_token=None)

    async def admit_registration(
        self, reg: VerifiedRegistration, check: Callable[[], Awaitable[None]] | None = None
    ) -> Grant:
        if check is not None:
            await check()
        return Grant(operator=None, seq=0)

    async def check_message(
        self, kind: MessageKind, target: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        return None

    def known_signer(self, headers: Mapping[str, str]) -> str | None:
        return None  # no keys held: no node is known by its signature


async def _resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def node_handler(n: int) -> Callable[[httpx.Request], httpx.Response]:
    whole = answer(n)
    text = answer_text(whole)
    lines = stream_lines(n)

    def handle(request: httpx.Request) -> httpx.Response:
        rid = request.headers["x-request-id"]
        receipt = node_receipt(rid, n, text)
        if b'"stream":true' in request.content:
            final = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                     "model": MODEL, "choices": [], "usage": whole["usage"],
                     "mesh": {"node_id": NODE.node_id, "model": MODEL, "receipt": receipt}}  # fmt: skip
            body = "\n\n".join([*lines, "data: " + json.dumps(final), "data: [DONE]"]) + "\n\n"
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=body.encode())  # fmt: skip
        data = dict(whole)
        data["mesh"] = {**whole["mesh"], "receipt": receipt}
        return httpx.Response(200, json=data)

    return handle


async def through_gateway(requests: int, tokens: int) -> dict[str, Any]:
    upstream = httpx.AsyncClient(transport=httpx.MockTransport(node_handler(tokens)))
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            health_check_interval_s=3600.0,
            anonymous_rpm=None,
            heartbeat_interval_s=3600.0,
            allow_plain_http_nodes=True,  # the mock node is http://node.bench
        )  # the mock node never beats
        app = create_registry_app(
            settings, store=MemoryStore(), http_client=upstream, node_auth=TrustingNodeAuth(),
            resolver=_resolver, announce=lambda _k: None, gateway_key=REGISTRY_KEY,
        )  # fmt: skip
        out: dict[str, Any] = {}
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            signer = rt.receipts
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
                reg = {"node_id": NODE.node_id, "url": "http://node.bench:8801",
                       "models": [{"id": MODEL, "engine": "sim", "simulated": True}],
                       "max_concurrency": 64, "max_queue": 64}  # fmt: skip
                assert (await c.post("/mesh/nodes", json=reg)).status_code == 200
                body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
                for stream in (False, True):
                    times: dict[str, list[float]] = {"on": [], "off": []}
                    for arm in ("on", "off") * 2:  # warm-up
                        rt.receipts = signer if arm == "on" else None
                        for _ in range(20):
                            await c.post("/v1/chat/completions", json={**body, "stream": stream})
                    diffs: list[float] = []
                    for i in range(requests):  # pairs, alternating which arm goes first
                        pair: dict[str, float] = {}
                        for arm in ("on", "off") if i % 2 == 0 else ("off", "on"):
                            rt.receipts = signer if arm == "on" else None
                            t0 = time.perf_counter()
                            r = await c.post("/v1/chat/completions",
                                             json={**body, "stream": stream})  # fmt: skip
                            pair[arm] = (time.perf_counter() - t0) * 1000
                            assert r.status_code == 200
                            assert ('"receipt"' in r.text) == (arm == "on")
                            times[arm].append(pair[arm])
                        diffs.append(pair["on"] - pair["off"])
                    rt.receipts = signer
                    key = "stream" if stream else "whole"
                    out[key] = {arm: {"p50_ms": pct(sorted(v), 0.5), "p90_ms": pct(sorted(v), 0.9),
                                      "n": len(v)} for arm, v in times.items()}  # fmt: skip
                    out[key]["paired_diff_p50_ms"] = pct(sorted(diffs), 0.5)
    await upstream.aclose()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000, help="per arm, per shape")
    ap.add_argument("--tokens", type=int, default=16, help="answer length through the gateway")
    args = ap.parse_args(argv)
    print(machine_line())
    log("per operation ...")
    rows = per_operation(args.iterations, args.repeat)
    print("\nper request, µs (best of rounds)            16 tok    256 tok   1024 tok")
    labels = [
        ("node: hash + sign", "node_sign_us"),
        ("gateway, whole: hash, verify, countersign, header", "gateway_whole_us"),
        ("gateway, stream: parse lines, hash, verify, countersign", "gateway_stream_us"),
        ("  of which parsing the stream's lines", "stream_parse_us"),
        ("baseline: sign a forwarded request", "forward_sign_us"),
        ("baseline: json loads+dumps of the answer", "json_roundtrip_us"),
        ("calibration: one Ed25519 sign (256 bytes, OpenSSL)", "raw_sign_us"),
        ("calibration: one Ed25519 verify (256 bytes, OpenSSL)", "raw_verify_us"),
        ("libsodium's sign (core/ed25519, the receipt's)", "sodium_sign_us"),
        ("libsodium's verify (core/ed25519, the receipt's)", "sodium_verify_us"),
    ]
    labels = [(label, k) for label, k in labels if k in rows[0]]
    for label, k in labels:
        print(f"{label:<56}" + "".join(f"{r[k]:>9.1f}" for r in rows))
    print("ratio gateway whole / (one libsodium sign + one verify): "
          + ", ".join(f"{r['gateway_whole_us'] / (r['sodium_sign_us'] + r['sodium_verify_us']):.2f}x"
                      for r in rows))  # fmt: skip
    print("ratio gateway whole / signing a forwarded request: "
          + ", ".join(f"{r['gateway_whole_us'] / r['forward_sign_us']:.2f}x" for r in rows))  # fmt: skip
    log("through the gateway ...")
    via = asyncio.run(through_gateway(args.requests, args.tokens))
    print(f"\nthrough the real gateway in process ({args.tokens} tokens; mock node signs)")
    for shape, arms in via.items():
        on, off, diff = arms["on"], arms["off"], arms["paired_diff_p50_ms"]
        print(f"  {shape:<6} receipts on p50 {on['p50_ms']:.3f} ms p90 {on['p90_ms']:.3f} | off "
              f"p50 {off['p50_ms']:.3f} ms p90 {off['p90_ms']:.3f} | added p50 "
              f"{on['p50_ms'] - off['p50_ms']:+.3f} ms ({on['p50_ms'] / off['p50_ms']:.3f}x), "
              f"median paired difference {diff:+.3f} ms, n={on['n']}")  # fmt: skip
    path = write_json("receipts", {"per_operation": rows, "through_gateway": via,
                                   "args": vars(args)})  # fmt: skip
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
