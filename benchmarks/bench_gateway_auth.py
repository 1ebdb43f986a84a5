"""The gateway → node authentication's CPU per request: Ed25519 signature vs session MAC.

Method: in this process, the real code (``core/gateway_auth.py``,
``core/gateway_session.py``): a ``GatewaySigner`` makes the headers for one request
(the body's SHA-256 given, as the send stage computes it once per body), a node's
``GatewayVerifier`` checks them (its own SHA-256 of the body, the checks, the replay
cache). Two ways, interleaved in ``--repeats`` rounds of ``--iterations`` requests
each: ``signature`` (no session key agreed: Ed25519 sign + verify) and ``session``
(a key agreed as at registration: HMAC-SHA256 both sides). The body is a
1,090-byte chat request. Reported: µs per request, best and median over rounds, for
each side, and the ratio signature / session, from the same run. The raw
``cryptography`` Ed25519 sign and verify are timed in the same rounds for calibration.

    .venv/bin/python benchmarks/bench_gateway_auth.py [--iterations 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time

from _common import machine_line, write_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_auth import GatewaySigner, GatewayVerifier
from LLM_Mesh.core.gateway_session import NodeKx

NODE = "node-bench"
PATH = "/v1/chat/completions"
BODY = json.dumps(
    {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "x" * 1024}],
        "max_tokens": 16,
    }
).encode()


def _verifier(signer: GatewaySigner, session: bool) -> GatewayVerifier:
    v = GatewayVerifier(signer.public_key, NODE)
    if session:
        kx = NodeKx()
        answer = signer.kx_answer(NODE, kx.public_key)
        assert answer is not None
        v.session_key = kx.agree(v.key, v.registry_id, NODE, answer[0], answer[1])
        assert v.session_key is not None
    else:
        signer.forget(NODE)
    return v


def one_round(signer: GatewaySigner, session: bool, n: int, start: int) -> tuple[float, float]:
    """(gateway µs, node µs) per request over ``n`` requests."""
    v = _verifier(signer, session)
    sha = hashlib.sha256(BODY).hexdigest()
    clock = time.process_time
    t0 = clock()
    made = [signer.headers(NODE, f"req-{start + i}", PATH, sha) for i in range(n)]
    t1 = clock()
    now = time.time()
    for h in made:
        v.verify(h, PATH, BODY, now)
    t2 = clock()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def raw_round(key: Ed25519PrivateKey, n: int) -> tuple[float, float]:
    data = b"x" * 250
    clock = time.process_time
    t0 = clock()
    sigs = [key.sign(data) for _ in range(n)]
    t1 = clock()
    pub = key.public_key()
    for s in sigs:
        pub.verify(s, data)
    t2 = clock()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(__doc__)
    print(machine_line())
    key = Ed25519PrivateKey.generate()
    signer = GatewaySigner(key, time.time)
    rows: dict[str, list[tuple[float, float]]] = {"signature": [], "session": [], "raw": []}
    start = 0
    for r in range(args.repeats):
        order = ("signature", "session") if r % 2 == 0 else ("session", "signature")
        for name in order:
            rows[name].append(one_round(signer, name == "session", args.iterations, start))
            start += args.iterations
        rows["raw"].append(raw_round(key, args.iterations))
    out: dict[str, dict[str, float]] = {}
    print(f"\n{'way':<10} {'gateway µs best/median':>24} {'node µs best/median':>22}")
    for name, xs in rows.items():
        gw, node = [x[0] for x in xs], [x[1] for x in xs]
        out[name] = {
            "gateway_us_best": min(gw),
            "gateway_us_median": statistics.median(gw),
            "node_us_best": min(node),
            "node_us_median": statistics.median(node),
        }
        label = "Ed25519 raw sign/verify" if name == "raw" else name
        print(
            f"{label:<10} {min(gw):>11.1f} / {statistics.median(gw):>8.1f} "
            f"{min(node):>11.1f} / {statistics.median(node):>8.1f}"
        )
    s, m = out["signature"], out["session"]
    ratio_gw = s["gateway_us_median"] / m["gateway_us_median"]
    ratio_node = s["node_us_median"] / m["node_us_median"]
    print(
        f"\nsignature / session (medians, same run): gateway {ratio_gw:.1f}x, node {ratio_node:.1f}x"
    )
    path = write_json("gateway_auth", {"params": vars(args), "results": out,
                                       "ratio_gateway": ratio_gw, "ratio_node": ratio_node})  # fmt: skip
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
