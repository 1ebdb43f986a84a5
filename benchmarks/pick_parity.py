"""Do two trees' routers make the same decisions? (A check for a change meant to make
``Router.pick`` cheaper without changing what it chooses.)

Method: the same seeded workloads run against ``Router`` in each tree, through its public
API only: 3, 8 or 40 nodes hosting 1-3 of 3 models, with random regions, capacities and
queues; then 3,000 random steps: re-registrations (new models, loaded set, per-model cold
start), removals, routability changes, heartbeats (load, loaded models, uptime,
``service_s``), another replica's ``heard``, attempts ended with every outcome (with and
without a first token, ``Retry-After``), and picks (1-3 models, expected tokens, strict
regions, ``exclude`` + ``deny_nodes``, ``allow_nodes``), the chosen node begun 70 % of the
time. Every decision (verdict, node, model, ``repr`` of cost and wait) and every 100 steps
each model's ``pool_counts`` is written out; the two trees' outputs must be equal byte for
byte.

    .venv/bin/python benchmarks/pick_parity.py --baseline-tree DIR [--seeds 40]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

from _common import tree_pythonpath


def workload(seed: int, out: list[str]) -> None:
    from LLM_Mesh.core.balancer import Attempt, Outcome, Router, RoutingPolicy
    from LLM_Mesh.core.outlier import EjectionPolicy
    from LLM_Mesh.core.scoring import RouteRequest

    rng = random.Random(seed)
    r = Router(
        RoutingPolicy(ejection=EjectionPolicy(base_s=2.0, slow_start_s=5.0)),
        random.Random(seed + 1),
    )
    models = ["a", "b", "c"]
    ids = [f"n{i}" for i in range(rng.choice([3, 8, 40]))]
    regions = ["eu", "us", None]
    now = 0.0
    atts: list[Attempt] = []
    for nid in ids:
        r.upsert_node(nid, rng.sample(models, rng.randint(1, 3)), now=now, region=rng.choice(regions),
                      max_concurrency=rng.choice([1, 2, 4]), max_queue=rng.choice([0, 2, 8]))  # fmt: skip
    for step in range(3000):
        now += rng.uniform(0, 0.2)
        x = rng.random()
        nid = rng.choice(ids)
        if x < 0.02:
            ms = rng.sample(models, rng.randint(1, 3))
            r.upsert_node(nid, ms, now=now, loaded=ms[:1], region=rng.choice(regions),
                          max_concurrency=rng.choice([1, 2, 4]), max_queue=rng.choice([0, 2, 8]),
                          model_cold_start_ms={ms[0]: rng.uniform(0, 5000)})  # fmt: skip
        elif x < 0.03:
            r.remove_node(nid)
        elif x < 0.06:
            r.set_routable(nid, rng.random() < 0.7)
        elif x < 0.15:
            r.heartbeat(nid, now, in_flight=rng.randint(0, 4), queued=rng.randint(0, 4),
                        loaded_models=rng.sample(models, rng.randint(0, 2)),
                        uptime=rng.choice([None, 1.0, 0.9]), service_s=rng.choice([None, 0.3, 1.2]))  # fmt: skip
        elif x < 0.2:
            r.heard(nid, now - rng.uniform(0, 30))
        elif x < 0.45 and atts:
            att = atts.pop(rng.randrange(len(atts)))
            if rng.random() < 0.5:
                r.first_token(att, now)
            r.finish(att, now + rng.uniform(0, 1), rng.choice(list(Outcome)),
                     completion_tokens=rng.randint(0, 50), ttft_ms=rng.choice([None, 50.0]),
                     retry_after_s=rng.choice([None, 1.0]))  # fmt: skip
        else:
            kind = rng.random()
            ms = tuple(rng.sample(models, rng.randint(1, 3)))
            if kind < 0.6:
                req = RouteRequest(ms, expected_tokens=rng.choice([None, 10, 500]))
            elif kind < 0.75:
                avoid = {"eu", ""} if rng.random() < 0.5 else {"us"}
                req = RouteRequest(ms, avoid_regions=frozenset(avoid))
            elif kind < 0.9:
                req = RouteRequest(ms, exclude=frozenset(rng.sample(ids, 2)),
                                   deny_nodes=frozenset(rng.sample(ids, 1)))  # fmt: skip
            else:
                allow = rng.sample(ids, min(len(ids), rng.randint(1, 5)))
                req = RouteRequest(ms, allow_nodes=frozenset(allow))
            d = r.pick(req, now)
            out.append(f"{step} {d.verdict.value} {d.node_id} {d.model} {d.cost_ms!r} {d.wait_s!r}")
            if d.node_id is not None and d.model is not None and rng.random() < 0.7:
                atts.append(r.begin(d.node_id, d.model, now))
        if step % 100 == 0:
            out.append(" ".join(str(r.pool_counts(m)) for m in models))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", help="the other checkout")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.emit:  # a worker: this process imports the tree on its PYTHONPATH
        out: list[str] = []
        for seed in range(args.seeds):
            workload(seed, out)
        sys.stdout.write("\n".join(out) + "\n")
        return 0
    here = Path(__file__).resolve().parent.parent
    trees = {"this tree": here}
    if args.baseline_tree:
        trees["baseline"] = Path(args.baseline_tree).resolve()
    texts = {}
    for name, path in trees.items():
        env = {**os.environ, "PYTHONPATH": tree_pythonpath(path)}
        texts[name] = subprocess.run(
            [sys.executable, __file__, "--emit", "--seeds", str(args.seeds)], cwd=path, env=env,
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        lines = texts[name].splitlines()
        verdicts = {
            v: sum(1 for x in lines if f" {v} " in x) for v in ("ok", "saturated", "no_node")
        }
        digest = hashlib.sha256(texts[name].encode()).hexdigest()[:16]
        print(f"{name}: {len(lines)} lines, decisions {verdicts}, sha256 {digest}")
    if len(texts) == 2:
        same = texts["this tree"] == texts["baseline"]
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
