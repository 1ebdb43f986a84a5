"""What models the mesh offers: the catalog plus custom models nodes host.

Shared by ``GET /v1/models`` (OpenAI's list shape) and ``GET /mesh/models``
(full catalog entries). Each entry says:

- ``available``: a healthy node hosts the model, loaded or able to load it
  (``nodes``: how many; ``/mesh/models`` also ``nodes_loaded``: of those, how
  many have it loaded);
- ``pricing``: what it costs, whole micro-NetworkTokens per 1,000 prompt and
  completion tokens (``core/pricing.py``; custom models: the catalog's custom price);
- ``simulated``: it is up and *every* healthy node serving it runs a simulated
  engine (``nodes_simulated``: how many of ``nodes`` are simulated), so no
  listing passes a simulated model off as a real one;
- ``context_length``: the context it is served with now (:func:`served`: the largest a
  healthy node serving it declares, at most the model's own), what the gateway holds a
  request to; ``catalog_context_length``: the catalog's (``None`` for a custom model).
  Before 2026-12-06 (context34) the listings said the catalog's 32768 for gemma-3-270m
  while its only node served 4096 and refused anything longer.

``GET /v1/models`` lists only the models served now (``available``), so an
OpenAI client's model picker offers nothing that would only answer 503;
``?all=true`` lists the whole catalog, as ``/mesh/models`` always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from LLM_Mesh.core.catalog import CATALOG, ModelSpec, custom_spec
from LLM_Mesh.core.stream_guard import node_context
from LLM_Mesh.core.validation import served_context
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable

CUSTOM_DEFAULT_CONTEXT = 4096


def custom_context(table: NodeTable, model_id: str) -> int:
    """A custom model's context: the largest any known node declares for it (one declaring
    none counts as :data:`CUSTOM_DEFAULT_CONTEXT`), at most ``stream_guard.MAX_CONTEXT``.
    What a request's estimate is priced at and a stream's limit is bounded by: a node
    serving it is held to its own context, never past this one (``Job.limit_on``)."""
    best = 0
    for declared in table.declared_contexts(model_id):
        best = max(best, node_context(declared, CUSTOM_DEFAULT_CONTEXT))
    return best or CUSTOM_DEFAULT_CONTEXT


def offered_specs(table: NodeTable) -> list[ModelSpec]:
    """Every catalog model, then every custom model a known node hosts (with the largest
    context its nodes declare: :func:`custom_context`)."""
    specs = list(CATALOG)
    for model_id, hosted in table.custom_models().items():
        specs.append(
            custom_spec(
                model_id,
                sha256=hosted.sha256,
                context_length=custom_context(table, model_id),
            )
        )
    return specs


def served(table: NodeTable, spec: ModelSpec, up: list[NodeEntry] | None = None) -> int:
    """The context ``spec``'s model is served with now: the largest its healthy nodes
    (``up``, else looked up) declare, at most ``spec.context_length``
    (``core/validation.served_context``); that one when none is up."""
    up = table.healthy_entries_for(spec.id) if up is None else up
    return served_context((e.models[spec.id].context_length for e in up), spec.context_length)


@dataclass
class ServedContexts:
    """:func:`served` per model for the parse stage, computed again only after the node
    table changed (``NodeTable.changes``: a registration, a state, an expiry swept) or
    ``ttl_s`` passed on its clock: a pass over a model's nodes a second at most, not one a
    request (1,000 nodes: 369 µs a pass, 0.19 µs cached: docs/benchmarks.md, 2026-12-06). One per runtime
    (``Runtime.served_contexts``); a figure at most ``ttl_s`` old is safe: the send stage
    checks the chosen node's own context."""

    ttl_s: float = 1.0
    most: int = 4096  # entries kept (model ids: the catalog's and those nodes host)
    _hits: dict[tuple[str, int], tuple[int, float, int]] = field(default_factory=dict)

    def get(self, table: NodeTable, spec: ModelSpec) -> int:
        now, key = table.clock(), (spec.id, spec.context_length)
        hit = self._hits.get(key)
        if hit is not None and hit[0] == table.changes and 0.0 <= now - hit[1] < self.ttl_s:
            return hit[2]
        if len(self._hits) >= self.most:
            self._hits.clear()
        ctx = served(table, spec, table.healthy_entries_for(spec.id, now))
        self._hits[key] = (table.changes, now, ctx)
        return ctx


def _contexts(table: NodeTable, spec: ModelSpec, up: list[NodeEntry]) -> dict[str, Any]:
    return {
        "context_length": served(table, spec, up),
        "catalog_context_length": None if spec.custom else spec.context_length,
    }


def known_model_ids(table: NodeTable) -> list[str]:
    return [s.id for s in offered_specs(table)]


def _serving(model_id: str, up: list[NodeEntry]) -> dict[str, Any]:
    """``available``, ``nodes``, ``nodes_simulated`` and ``simulated`` for one model."""
    sim = sum(1 for e in up if e.models[model_id].simulated)
    return {
        "available": bool(up),
        "nodes": len(up),
        "nodes_simulated": sim,
        "simulated": bool(up) and sim == len(up),
    }


def mesh_models(table: NodeTable) -> list[dict[str, Any]]:
    """``GET /mesh/models``: every catalog entry with ``available``, ``nodes``, ``simulated``."""
    now = table.clock()
    out: list[dict[str, Any]] = []
    for spec in offered_specs(table):
        entry = spec.to_dict()
        up = table.healthy_entries_for(spec.id, now)
        entry.update(_serving(spec.id, up))
        entry["nodes_loaded"] = sum(1 for e in up if e.models[spec.id].loaded)
        entry.update(_contexts(table, spec, up))
        out.append(entry)
    return out


def openai_models(table: NodeTable, *, include_all: bool = False) -> dict[str, Any]:
    """``GET /v1/models``: OpenAI's list shape of the models served now (all: ``include_all``)."""
    now = table.clock()
    data: list[dict[str, Any]] = []
    for spec in offered_specs(table):
        up = table.healthy_entries_for(spec.id, now)
        serving = _serving(spec.id, up)
        if not (include_all or serving["available"]):
            continue
        data.append(
            {
                "id": spec.id,
                "object": "model",
                "created": 0,
                "owned_by": "llm-mesh-community" if spec.custom else "llm-mesh",
                **serving,
                "custom": spec.custom,
                **_contexts(table, spec, up),
                "pricing": spec.price.to_json(),
            }
        )
    return {"object": "list", "data": data}


def openai_model(table: NodeTable, model_id: str) -> dict[str, Any] | None:
    """``GET /v1/models/{model_id}``: that model's entry of the whole catalog's list (served
    now or not: ``available`` says), ``None`` when the mesh has no such model."""
    data: list[dict[str, Any]] = openai_models(table, include_all=True)["data"]
    return next((entry for entry in data if entry["id"] == model_id), None)
