"""docs/grafana-dashboard.json: valid JSON whose queries name only metrics and labels the
gateway and the node really export (scraped from the in-process mesh after traffic)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from LLM_Mesh.registry.metrics_states import WORKER_GAUGES
from tests.inprocess_mesh import ON_THE_MACHINE, InProcessMesh

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _exprs(panels: list[dict[str, object]]) -> list[str]:
    out: list[str] = []
    for p in panels:
        for t in p.get("targets", []) or []:  # type: ignore[union-attr]
            out.append(t["expr"])  # type: ignore[index]
        out += _exprs(p.get("panels", []) or [])  # type: ignore[arg-type]
    return out


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_dashboard_names_only_exported_metrics_and_labels(inprocess_mesh: InProcessMesh) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "llm-mesh" and dash["panels"]
    exprs = _exprs(dash["panels"])
    assert len(exprs) >= 25

    node = inprocess_mesh.add_node("gemma-3-270m", "n1")
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
    families: dict[str, set[str]] = {}
    with inprocess_mesh.sync_client() as c:
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        for url in (inprocess_mesh.registry_url, node.url):
            for fam in text_string_to_metric_families(
                c.get(url + "/metrics", headers=ON_THE_MACHINE).text
            ):
                labels = families.setdefault(fam.name, set())
                for s in fam.samples:
                    labels.update(s.labels)
    for name in WORKER_GAUGES:  # `--workers N` only: tests/e2e/test_workers_metrics.py
        families[name] = {"pid"}
    known_labels = set().union(*families.values()) | {"job", "instance", "le"}

    used: set[str] = set()
    for expr in exprs:
        for name in re.findall(r"\b((?:llm_mesh|process)_[a-z_]+)", expr):
            used.add(name)
            assert _family(name) in families, f"{name} (in {expr!r}) is not exported"
        for selector in re.findall(r"\{([^}]*)\}", expr):
            for key in re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", selector):
                assert key in known_labels, f"label {key!r} (in {expr!r}) is not exported"
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for key in (k.strip() for k in group.split(",")):
                assert key in known_labels, f"label {key!r} (in {expr!r}) is not exported"
    # the panels cover both sides and the failover decisions
    for must in ("llm_mesh_gateway_requests_total", "llm_mesh_gateway_ttft_seconds_bucket",
                 "llm_mesh_gateway_nodes", "llm_mesh_gateway_failovers_total",
                 "llm_mesh_node_queued", "llm_mesh_node_requests_total",
                 # the guards' rare events and settlement's syncs (tests/registry/test_metrics_guards.py)
                 "llm_mesh_gateway_wait_pushouts_total", "llm_mesh_gateway_wait_refusals_total",
                 "llm_mesh_gateway_stream_padding_cuts_total",
                 "llm_mesh_gateway_settle_sync_failing",
                 "llm_mesh_gateway_settle_sync_failures_total",
                 "llm_mesh_gateway_settle_unwritten_total",
                 "llm_mesh_gateway_settle_recovered_total",
                 # every background loop's failed rounds (tests/registry/test_metrics_loops.py)
                 "llm_mesh_gateway_loop_failing",
                 "llm_mesh_gateway_loop_failed_rounds_total"):  # fmt: skip
        assert must in used
