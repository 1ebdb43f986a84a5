"""The gateway's added latency with TLS on both hops, beside the same without TLS.

Method: two local meshes in one run, each a registry+gateway and one ``sim`` node
(SIMULATED: ``--sim-ttft-s 0``, 10^6 tokens/s, ``max_tokens`` 1, so the HTTP path
is measured, not a model), separate processes on loopback, throw-away homes:

  plain  ``registry serve`` and ``node start`` over http
  tls    ``registry serve --tls-cert/--tls-key --require-tls`` (a self-signed
         certificate made here, trusted by the client as its CA file) and a node
         serving https with a ``node tls init`` certificate, pinned by the gateway
         through the fingerprint in its signed registration

Targets, all ``POST /v1/chat/completions`` (non-streamed, the same body), one
``httpx.Client`` each (keep-alive, so the TLS handshakes are paid once per
connection, as a client and the gateway's pool pay them): per mesh, "direct" = a
second ``sim`` node with the same settings started with ``register = false`` (its
own throw-away home; in the TLS mesh it serves https with the same ``node tls init``
certificate), called directly, and "via gateway" = the gateway in front of the
registered node, with a client API key made for the run (the gateway rate-limits
anonymous clients). A registered node answers inference only with the gateway's
signature, so it cannot be called directly: direct = an unregistered node (no
gateway signature to verify); ours = gateway -> registered node (authenticated: the
node's session MAC, or a signature). The added latency therefore includes that check.
Requests go one at a time, interleaved over the four targets in rotating order, ``--chunks`` chunks, after a warm-up.

Added latency = percentile(via gateway) - percentile(direct node), per mesh; the
TLS mesh's direct calls are https too, so its figure is what the gateway adds with
TLS on both hops (the client's hop and the gateway's hop to the node).

    .venv/bin/python benchmarks/bench_tls.py [--requests 400] [--chunks 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import (
    BASELINE_LINE,
    LOOPBACK,
    free_ports,
    log,
    machine_line,
    make_api_key,
    operator_token,
    pct,
    standalone_node,
    write_json,
)

MODEL = "mistral-7b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 1}
SIM_TUNING = ["--sim-ttft-s", "0", "--sim-tokens-per-s", "1000000"]
SIM = ["--engine", "sim", "--model", MODEL, *SIM_TUNING]


@contextmanager
def mesh(home: Path, *, tls: bool) -> Iterator[dict[str, Any]]:
    """Start one mesh; yield its node and gateway URLs and the client's verify settings."""
    from LLM_Mesh.node.tls import make_self_signed
    from LLM_Mesh.tls import client_ssl_context

    home.mkdir(parents=True)
    env = {
        **os.environ,
        "LLM_MESH_HOME": str(home),
        "LLM_MESH_OPERATOR_TOKEN": operator_token(home),
    }
    api_key = make_api_key(home)  # anonymous clients are rate-limited
    reg_port, node_port = free_ports(2)
    scheme = "https" if tls else "http"
    registry = f"{scheme}://{LOOPBACK}:{reg_port}"
    reg_args = ["--host", LOOPBACK, "--port", str(reg_port), "--allow-private-nodes"]
    node_args = ["--registry", registry, "--host", LOOPBACK, "--port", str(node_port), *SIM]
    direct_args = list(SIM_TUNING)
    verify_gw: Any = True
    verify_node: Any = True
    if tls:
        rc = make_self_signed(home / "registry-tls.crt", home / "registry-tls.key", [LOOPBACK])
        reg_args += ["--tls-cert", str(rc.cert_path), "--tls-key", str(rc.key_path)]
        reg_args += ["--require-tls"]
        out = subprocess.run(
            [sys.executable, "-m", "LLM_Mesh.cli", "node", "tls", "init", "--host", LOOPBACK],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        fp = re.search(r"sha256 fingerprint: (\S+)", out.stdout)
        log(f"  tls: node certificate {fp.group(1) if fp else '?'}")
        node_args += ["--tls-cert", str(home / "node-tls.crt"), "--tls-key"]
        node_args += [str(home / "node-tls.key"), "--registry-ca", str(rc.cert_path)]
        direct_args += ["--tls-cert", str(home / "node-tls.crt")]
        direct_args += ["--tls-key", str(home / "node-tls.key")]
        verify_gw = client_ssl_context(rc.cert_path)
        verify_node = client_ssl_context(home / "node-tls.crt")
    procs = []
    for args in (["registry", "serve", *reg_args], ["node", "start", "--no-config", *node_args]):
        logf = (home / f"{args[0]}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "LLM_Mesh.cli", *args],
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=verify_gw, timeout=2) as c:
            while True:
                try:
                    nodes = c.get(registry + "/mesh/nodes").json()["nodes"]
                    # the public listing hides node URLs; this mesh has one node
                    if any(n.get("healthy") for n in nodes):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"the {scheme} mesh did not start; logs in {home}")
                time.sleep(0.2)
        with standalone_node(
            model=MODEL, engine="sim", node_args=direct_args, scheme=scheme, verify=verify_node
        ) as direct:
            yield {
                "node": direct,
                "gateway": registry,
                "verify_node": verify_node,
                "verify_gw": verify_gw,
                "api_key": api_key,
            }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)


def run(requests: int, chunks: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="llm-mesh-bench-tls-")
    try:
        with (
            mesh(Path(tmp) / "plain", tls=False) as plain,
            mesh(Path(tmp) / "tls", tls=True) as tls,
        ):
            targets = {
                "plain direct": (plain["node"], plain["verify_node"]),
                "plain via gateway": (plain["gateway"], plain["verify_gw"]),
                "tls direct": (tls["node"], tls["verify_node"]),
                "tls via gateway": (tls["gateway"], tls["verify_gw"]),
            }
            keys = {"plain via gateway": plain["api_key"], "tls via gateway": tls["api_key"]}
            clients = {
                k: httpx.Client(
                    verify=v,
                    timeout=30,
                    headers={"Authorization": f"Bearer {keys[k]}"} if k in keys else None,
                )
                for k, (_u, v) in targets.items()
            }
            lat: dict[str, list[float]] = {k: [] for k in targets}
            errors = dict.fromkeys(targets, 0)
            try:
                names = list(targets)
                for name in names:  # warm-up: connections open, handshakes done
                    for _ in range(30):
                        clients[name].post(targets[name][0] + "/v1/chat/completions", json=BODY)
                per_chunk = max(1, requests // chunks)
                for c in range(chunks):
                    for name in names[c % 4 :] + names[: c % 4]:
                        url = targets[name][0] + "/v1/chat/completions"
                        for _ in range(per_chunk):
                            t0 = time.perf_counter()
                            r = clients[name].post(url, json=BODY)
                            dt = time.perf_counter() - t0
                            if r.status_code == 200:
                                lat[name].append(dt)
                            else:
                                errors[name] += 1
            finally:
                for cl in clients.values():
                    cl.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"targets": {}, "added": {}}
    for name, xs in lat.items():
        xs.sort()
        out["targets"][name] = {
            "n": len(xs), "errors": errors[name],
            "p50_ms": pct(xs, 0.5) * 1000, "p99_ms": pct(xs, 0.99) * 1000,
        }  # fmt: skip
    for mode in ("plain", "tls"):
        d, v = out["targets"][f"{mode} direct"], out["targets"][f"{mode} via gateway"]
        out["added"][mode] = {q: v[q] - d[q] for q in ("p50_ms", "p99_ms")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per target")
    ap.add_argument("--chunks", type=int, default=5)
    a = ap.parse_args()
    res = run(a.requests, a.chunks)
    print(machine_line())
    print(f"{BASELINE_LINE} (ours = the 'via gateway' targets)")
    print(f"{'target':<20} {'n':>5} {'err':>4} {'p50 ms':>8} {'p99 ms':>8}")
    for name, t in res["targets"].items():
        print(f"{name:<20} {t['n']:>5} {t['errors']:>4} {t['p50_ms']:>8.2f} {t['p99_ms']:>8.2f}")
    p, t = res["added"]["plain"], res["added"]["tls"]
    print(f"gateway added, plain:          p50 {p['p50_ms']:+.2f} ms  p99 {p['p99_ms']:+.2f} ms")
    print(f"gateway added, TLS both hops:  p50 {t['p50_ms']:+.2f} ms  p99 {t['p99_ms']:+.2f} ms")
    print(f"results: {write_json('bench_tls', {'args': vars(a), **res})}")


if __name__ == "__main__":
    main()
