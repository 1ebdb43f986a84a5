"""The account stage's CPU for one whole answer, in process: ``mesh_answer`` per checkout.

Method: for each checkout given (default: this one), in turn for ``--rounds`` rounds, a
child process with that checkout first on ``PYTHONPATH`` builds a settled request's
:class:`~LLM_Mesh.registry.job.Tally` as the send stage leaves it (one node part with a
receipt the node signed, fixed keys) and times ``account.mesh_answer`` (the ``mesh``
object: the part checked, priced, countersigned, its JSON; what the gateway does between
the node's answer and ``json_answer``) by the thread's CPU (``time.thread_time``), the
median of ``--batches`` batches of ``--calls`` calls; then the same with libsodium's
verify and sign replaced by stubs (the Python around them), and ``relay.json_answer`` of that
answer (its body and ``X-Mesh-Receipt``). The job, the node table and the payment are
stand-ins with the fields the stage reads (no gateway, no store). The child prints the
answer's ``mesh`` object, body and headers too (fixed keys and clock): every tree must
print the same bytes.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_account_cpu.py [TREE ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, statistics, sys, time
from types import SimpleNamespace as NS
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from LLM_Mesh.core import ed25519
from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.pricing import Price
from LLM_Mesh.core.receipt import NodeReceiptSigner, ReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys, Observed
from LLM_Mesh.registry import account
from LLM_Mesh.registry.job import Tally

calls, batches = int(sys.argv[1]), int(sys.argv[2])
node = NodeReceiptSigner(Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
signer = ReceiptSigner(Ed25519PrivateKey.from_private_bytes(b"\x02" * 32), lambda: 1764900000.123)
RID, MODEL = "req-0123456789abcdef0123456789", "mistral-7b"
digest = output_sha256("word " * 40)
claim = node.sign(registry_id=signer.registry_id, request_id=RID, model=MODEL,
                  prompt_tokens=12, completion_tokens=40, output_sha256=digest)
hosted = NS(engine="sim", simulated=True)
rt = NS(receipts=signer, node_keys=NodeKeys(), table=NS(hosted=lambda n, m: hosted),
        clock=lambda: 100.0)

class Job:
    forwarded_id = request_id = settle_key = RID
    node_request_id = ""
    model = MODEL
    price = Price(100, 200)
    estimate = 10**6
    prompt_bound = 500
    client_id_hash = ""
    started = 99.99

    def prompt_usual(self):
        return 10

job, payment = Job(), NS(payer="user:abc", fee_bps=500)
node_mesh = {"node_id": node.node_id, "engine": "sim", "simulated": True, "latency_ms": 1.2,
             "ttft_ms": 0.4, "receipt": claim}

def one():
    t = Tally()
    t.node_id, t.prompt_tokens, t.completion_tokens, t.attempts = node.node_id, 12, 40, 1
    t.output_sha256 = digest
    t.outputs.append(Observed(node.node_id, 12, 40, digest, claim))
    data = {"mesh": dict(node_mesh)}
    account.mesh_answer(rt, job, t, data, payment)
    return data

def per_call():
    out = []
    for _ in range(batches):
        t0 = time.thread_time()
        for _ in range(calls):
            one()
        out.append((time.thread_time() - t0) / calls * 1e6)
    return statistics.median(out)

from LLM_Mesh.registry.relay import json_answer

print(json.dumps(one()["mesh"]))

answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1764900000, "model": MODEL,
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 40},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
          "mesh": one()["mesh"]}
relay_job = NS(model=MODEL, request_id=RID)
response = json_answer(relay_job, node.node_id, answer, answer["mesh"]["receipt"])
print(json.dumps([response.body.decode(), [[k.decode(), v.decode()] for k, v in response.raw_headers]]))
out = []
for _ in range(batches):
    t0 = time.thread_time()
    for _ in range(calls):
        json_answer(relay_job, node.node_id, answer, answer["mesh"]["receipt"])
    out.append((time.thread_time() - t0) / calls * 1e6)
print(statistics.median(out))
one()
print(per_call())
ed25519.PublicKey.verify = lambda self, signature, data: True
ed25519.Signer.sign = lambda self, data: b"\0" * 64
one()
print(per_call())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", default=[str(Path(__file__).resolve().parents[1])])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=5)
    args = ap.parse_args()
    full: dict[str, list[float]] = {t: [] for t in args.trees}
    python: dict[str, list[float]] = {t: [] for t in args.trees}
    answers: dict[str, list[float]] = {t: [] for t in args.trees}
    meshes: dict[str, str] = {}
    for r in range(args.rounds):
        for tree in args.trees if r % 2 == 0 else reversed(args.trees):
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.calls), str(args.batches)],
                env=env, cwd=tree, capture_output=True, text=True, check=True,
            ).stdout.splitlines()  # fmt: skip
            meshes[tree] = out[0] + out[1]
            answers[tree].append(float(out[2]))
            full[tree].append(float(out[3]))
            python[tree].append(float(out[4]))
            print(f"round {r + 1} {tree}: mesh_answer {full[tree][-1]:.1f} µs, "
                  f"without Ed25519 {python[tree][-1]:.1f} µs; json_answer "
                  f"{answers[tree][-1]:.1f} µs", flush=True)  # fmt: skip
    for tree in args.trees:
        sha = hashlib.sha256(meshes[tree].encode()).hexdigest()[:16]
        print(f"{tree}: mesh_answer median {statistics.median(full[tree]):.1f} µs, without "
              f"Ed25519 {statistics.median(python[tree]):.1f} µs; json_answer "
              f"{statistics.median(answers[tree]):.1f} µs; sha256 of the mesh, the answer's "
              f"body and headers {sha}")  # fmt: skip
    print("mesh objects, answer bodies and headers identical:", len(set(meshes.values())) == 1)


if __name__ == "__main__":
    main()
