"""The shared /metrics pieces (metrics_http.py): per-app registries, the children cache."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter

from LLM_Mesh.metrics_http import Children, new_registry


def test_registries_are_the_apps_own() -> None:
    a, b = new_registry(), new_registry()
    assert a is not b and a is not REGISTRY
    Counter("llm_mesh_test_things", "t", registry=a)
    Counter("llm_mesh_test_things", "t", registry=b)  # same name, no collision
    assert REGISTRY.get_sample_value("llm_mesh_test_things_total") is None
    assert a.get_sample_value("process_resident_memory_bytes") is not None


def test_children_are_cached_per_label_tuple() -> None:
    reg = new_registry()
    metric = Counter("llm_mesh_test_hits", "h", ["a", "b"], registry=reg)
    two: Children[tuple[str, str], Counter] = Children(metric)
    assert two(("x", "y")) is two(("x", "y")) is metric.labels("x", "y")
    two(("x", "y")).inc()
    two(("x", "z")).inc(2)
    assert reg.get_sample_value("llm_mesh_test_hits_total", {"a": "x", "b": "y"}) == 1
    assert reg.get_sample_value("llm_mesh_test_hits_total", {"a": "x", "b": "z"}) == 2
    one: Children[str, Counter] = Children(Counter("llm_mesh_test_one", "o", ["m"], registry=reg))
    one("m1").inc()
    assert reg.get_sample_value("llm_mesh_test_one_total", {"m": "m1"}) == 1
