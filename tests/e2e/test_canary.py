"""Canary probes end to end, on loopback, with the real model.

A registry and four real node processes: the verifier (honest, trusted by the admin),
another honest node, a node serving gemma-3-270m requantised to Q2_K under the real
file's name and sha256, and a node answering with another model's text (the sim
engine's words, made-up log-probabilities) under the real model's name. Probe rounds
run (``POST /mesh/canary/run``, what ``llm-mesh registry canary run`` calls) until the
liars are quarantined; meanwhile a user keeps sending requests. Checked: the other-text
node at its first greedy probe (a sampled one before it may pass), the requantised one
within 20 probes, the honest node never; every user
request succeeds, and none goes to a quarantined node; ``status``, ``node info`` and
``nodes clear`` say and do what they should.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.local_mesh import LocalMesh
from LLM_Mesh.node.keys import key_path, load_or_create_key
from tests.e2e.conftest import free_port, needs_model, start_mesh
from tests.waiting import SOON_S, START_S, scaled


def honest_verdict(res: dict[str, Any]) -> bool:
    """An honest node's probe passes; one judged on its text alone (streamed, or asking no
    ``logprobs``) whose reference starts at a near tie has nothing sure to compare
    (``unverified``), never a failure."""
    return bool(
        res["verdict"] == "pass"
        or (res["verdict"] == "unverified" and res["detail"].startswith("text only:"))
    )


pytestmark = [pytest.mark.e2e, pytest.mark.model, needs_model]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gemma-3-270m"


def cli(mesh: LocalMesh, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = mesh._env()
    env["COLUMNS"] = "300"  # rich's tables at full width
    if home is not None:
        env["LLM_MESH_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def spawn(mesh: LocalMesh, home: Path, args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    home.mkdir(parents=True, exist_ok=True)
    env = mesh._env()
    env["LLM_MESH_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with (home / "node.log").open("ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
    return proc, load_or_create_key(key_path(mesh.settings.__class__.from_env(env))).node_id


def nodes(mesh: LocalMesh) -> dict[str, dict[str, Any]]:
    """The admin's listing: its canary tallies are live (the public's are an hour late)."""
    key = (mesh.settings.home / "admin.key").read_text().strip()
    r = httpx.get(
        mesh.registry_url + "/mesh/nodes", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return {n["node_id"]: n for n in r.json()["nodes"]}


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_liars_are_quarantined_the_honest_node_never(tmp_path: Path) -> None:
    mesh = start_mesh(tmp_path / "mesh", allow_private_nodes=True, node_args=["--n-threads", "1"])
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()  # the user's thread stops with the test, failed or not (CI
    # 2026-12-06: after a failure it went on against the stopped mesh, and its ConnectError
    # was reported as the next test's error)
    try:
        verifier = mesh._node_id
        assert verifier is not None
        honest_port, requant_port, other_port = free_port(), free_port(), free_port()
        p, honest = spawn(mesh, tmp_path / "honest", [
            "-m", "LLM_Mesh.cli", "node", "start", "--registry", mesh.registry_url,
            "--model", MODEL, "--engine", "llama-cpp", "--host", "127.0.0.1",
            "--port", str(honest_port), "--no-config", "--n-threads", "1",
        ])  # fmt: skip
        procs.append(p)
        p, requant = spawn(
            mesh, tmp_path / "requant", ["-m", "tests.e2e.liar_node", "requant", str(requant_port)]
        )
        procs.append(p)
        p, other = spawn(
            mesh, tmp_path / "other", ["-m", "tests.e2e.liar_node", "other", str(other_port)]
        )
        procs.append(p)
        everyone = {verifier, honest, requant, other}
        wait_for(
            lambda: everyone <= {n for n, v in nodes(mesh).items() if v["healthy"]},
            START_S, "four healthy nodes",
        )  # fmt: skip
        done = cli(mesh, "registry", "nodes", "trust", verifier, home=mesh.settings.home)
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: nodes(mesh)[verifier]["verifier"], SOON_S, "the registry to learn the verifier"
        )

        # a user sends requests all along
        served: list[tuple[float, int, str | None]] = []

        def user() -> None:
            with httpx.Client(base_url=mesh.registry_url, timeout=120) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    sent = time.monotonic()
                    r = c.post("/v1/completions", json={
                        "model": MODEL, "prompt": f"def add_{i}(a, b):", "max_tokens": 4,
                    })  # fmt: skip
                    node = r.json().get("mesh", {}).get("node_id") if r.status_code == 200 else None
                    served.append((sent, r.status_code, node))
                    stop.wait(0.3)

        t = threading.Thread(target=user, daemon=True)
        t.start()
        admin = {
            "Authorization": f"Bearer {(mesh.settings.home / 'admin.key').read_text().strip()}"
        }
        quarantined_at: dict[str, float] = {}
        of_other: list[str] = []  # the verdicts of the rounds' probes of ``other``
        rounds = 0
        with httpx.Client(base_url=mesh.registry_url, timeout=300) as c:
            while rounds < 20 and not {requant, other} <= set(quarantined_at):
                rounds += 1
                r = c.post("/mesh/canary/run", headers=admin)
                assert r.status_code == 200, r.text
                for res in r.json()["results"]:
                    if res["node_id"] == honest:
                        assert honest_verdict(res), res
                    elif res["node_id"] == other:  # said if the bound below fails
                        of_other.append(f"{res['verdict']}: {res['detail'][:100]}")
                # the registry's own scheduler probes too: the listing says who is out
                for n, v in nodes(mesh).items():
                    if v["quarantined"]:
                        quarantined_at.setdefault(n, time.monotonic())
            # more of the honest node, until 3 of its probes passed: a streamed probe whose
            # reference starts at a near tie is ``unverified`` (no evidence either way), and
            # about a quarter of probes are such (``core/canary_shape.py``), so a fixed
            # count of rounds left it short of 3 passes in about one run in four
            for _ in range(12):
                if nodes(mesh)[honest]["canary_passed"] >= 3:
                    break
                for res in c.post(
                    "/mesh/canary/run", headers=admin, params={"node": honest}
                ).json()["results"]:
                    assert honest_verdict(res), res
        view = nodes(mesh)
        probes = {n: view[n]["canary_passed"] + view[n]["canary_failed"] for n in everyone}
        names = {verifier: "verifier", honest: "honest", requant: "requant", other: "other"}
        print(f"probes: { {names[n]: k for n, k in probes.items()} }, rounds {rounds}")
        assert [q["model"] for q in view[other]["quarantined"]] == [MODEL]
        assert [q["model"] for q in view[requant]["quarantined"]] == [MODEL]
        # another model's text fails every greedy probe (docs/benchmarks.md, "Canary probes":
        # 64 of 64 on the first); a sampled one (``Mix.sampled_share``: 30 % of probes) may
        # pass it, its judge needing many (core/canary_departures.py), and the scheduler's
        # probe may be in flight beside the round's when one fails. So the passes before the
        # catch are sampled ones: k in a row with chance 0.3^k (CI 2026-12-06: 4 probes, when
        # this said <= 3 in all: 0.3^3, 2.7 % of runs); 7 or more: 0.02 %
        passed, failed = view[other]["canary_passed"], view[other]["canary_failed"]
        assert passed <= 6 and 1 <= failed <= 2, (probes, of_other)
        assert probes[requant] <= 20, probes
        assert view[honest]["quarantined"] == [] and view[honest]["canary_failed"] == 0
        assert view[honest]["canary_passed"] >= 3 and view[honest]["trusted"]
        assert view[verifier]["quarantined"] == []

        # users after the quarantine: until one sent after it is answered (found by probe32:
        # a fixed 3 s was shorter than one real-model answer under load, ~8 s measured, when
        # no honest rounds followed the last quarantine; the test failed with no such request)
        after = max(quarantined_at.values()) + 0.5
        wait_for(lambda: any(at > after for at, _, _ in served), 180, "a user after the catch")
        stop.set()
        t.join(120)
        assert served and all(status == 200 for _, status, _ in served), served
        late = [n for at, _, n in served if at > max(quarantined_at.values()) + 0.5]
        assert late and not ({requant, other} & set(late)), late

        status = cli(mesh, "status")
        assert status.returncode == 0, status.stderr
        assert "quarantined" in status.stdout
        info = cli(mesh, "node", "info", "--node-url", f"http://127.0.0.1:{other_port}")
        assert info.returncode == 0, info.stderr
        assert "QUARANTINED" in info.stdout and "canary" in info.stdout
        cleared = cli(mesh, "registry", "nodes", "clear", requant, home=mesh.settings.home)
        assert cleared.returncode == 0 and MODEL in cleared.stdout, cleared.stderr
        wait_for(lambda: nodes(mesh)[requant]["quarantined"] == [], SOON_S, "the clear")
        run = cli(mesh, "registry", "canary", "run", "--node", other, home=mesh.settings.home)
        assert "nothing to probe" in run.stdout  # still quarantined: not probed
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        mesh.stop()
