"""docs/operations.md's metric tables against what the gateway and a node export: each
``llm_mesh_*`` row's name, type and label names as scraped from the in-process mesh after
traffic, and every exported family in a row (docs33, 2026-12-06; the Grafana dashboard's
queries are tests/test_grafana_dashboard.py's)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from LLM_Mesh.registry.metrics_states import WORKER_GAUGES
from tests.inprocess_mesh import ON_THE_MACHINE, InProcessMesh

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
_ROW = re.compile(r"(?m)^\| (`llm_mesh_[^|]*) \| (\w*) \| ([^|]*) \|")


def documented(text: str) -> dict[str, tuple[str, set[str]]]:
    """Each table row's metric families (a counter's ``_total`` left off, as
    prometheus-client names the family): its type and the label names it lists."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for names, kind, labels in _ROW.findall(text):
        # the label names, not their values (in brackets)
        keys = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels)))
        for name in re.findall(r"`(llm_mesh_\w+)`", names):
            family = name.removesuffix("_total") if kind == "counter" else name
            rows[family] = (kind, keys)
    return rows


def test_the_table_reader() -> None:
    text = "| `llm_mesh_a_total` | counter | `model`, `kind` (`prompt`, `completion`) | x |\n"
    text += "| `llm_mesh_b`, `llm_mesh_c` | gauge | — | y |\n"
    assert documented(text) == {
        "llm_mesh_a": ("counter", {"model", "kind"}),
        "llm_mesh_b": ("gauge", set()),
        "llm_mesh_c": ("gauge", set()),
    }


def test_the_metric_tables_are_what_is_exported(inprocess_mesh: InProcessMesh) -> None:
    node = inprocess_mesh.add_node("gemma-3-270m", "n1")
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
    exported: dict[str, tuple[str, set[str]]] = {}
    with inprocess_mesh.sync_client() as c:
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        for url in (inprocess_mesh.registry_url, node.url):
            text = c.get(url + "/metrics", headers=ON_THE_MACHINE).text
            for fam in text_string_to_metric_families(text):
                if fam.name.startswith("llm_mesh_") and not fam.name.endswith("_created"):
                    labels = {k for s in fam.samples for k in s.labels if k != "le"}
                    exported[fam.name] = (fam.type, labels)
    for name in WORKER_GAUGES:  # `--workers N` only: tests/e2e/test_workers_metrics.py
        exported[name] = ("gauge", {"pid"})

    docs = documented(OPERATIONS.read_text())
    assert len(docs) >= 40
    assert sorted(set(exported) - set(docs)) == []  # every family has its row
    for name, (kind, labels) in docs.items():
        assert name in exported, f"{name} is not exported"
        assert (name, kind) == (name, exported[name][0])
        # a family whose labelled children come with their events shows no sample before
        assert exported[name][1] <= labels, (name, exported[name][1], labels)
        if exported[name][1]:
            assert (name, labels) == (name, exported[name][1])
