"""What models the mesh offers: the catalog plus custom models nodes host.

Shared by ``GET /v1/models`` (OpenAI's list shape plus ``available`` and
``nodes``) and ``GET /mesh/models`` (full catalog entries plus the same).
``available``: a healthy node hosts the model, loaded or able to load it
(``nodes``: how many; ``nodes_loaded``: of those, how many have it loaded).
"""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.catalog import CATALOG, ModelSpec, custom_spec
from LLM_Mesh.registry.node_table import NodeTable

CUSTOM_PRICE_PER_1K = 0.001  # NetworkTokens per 1,000 tokens for models outside the catalog
CUSTOM_DEFAULT_CONTEXT = 4096


def offered_specs(table: NodeTable) -> list[ModelSpec]:
    """Every catalog model, then every custom model a known node hosts."""
    specs = list(CATALOG)
    for model_id, hosted in table.custom_models().items():
        specs.append(
            custom_spec(
                model_id,
                sha256=hosted.sha256,
                context_length=hosted.context_length or CUSTOM_DEFAULT_CONTEXT,
            )
        )
    return specs


def known_model_ids(table: NodeTable) -> list[str]:
    return [s.id for s in offered_specs(table)]


def mesh_models(table: NodeTable) -> list[dict[str, Any]]:
    """``GET /mesh/models``: catalog entries with ``available`` and ``nodes``."""
    now = table.clock()
    out: list[dict[str, Any]] = []
    for spec in offered_specs(table):
        entry = spec.to_dict()
        if spec.custom:
            entry["price_per_1k_tokens"] = CUSTOM_PRICE_PER_1K
        up = table.healthy_entries_for(spec.id, now)
        entry["available"] = bool(up)
        entry["nodes"] = len(up)
        entry["nodes_loaded"] = sum(1 for e in up if e.models[spec.id].loaded)
        out.append(entry)
    return out


def openai_models(table: NodeTable) -> dict[str, Any]:
    """``GET /v1/models``: OpenAI's list shape, each with ``available`` and ``nodes``."""
    now = table.clock()
    data: list[dict[str, Any]] = []
    for spec in offered_specs(table):
        n = table.nodes_up_for(spec.id, now)
        data.append(
            {
                "id": spec.id,
                "object": "model",
                "created": 0,
                "owned_by": "llm-mesh-community" if spec.custom else "llm-mesh",
                "available": n > 0,
                "nodes": n,
                "custom": spec.custom,
                "context_length": spec.context_length,
            }
        )
    return {"object": "list", "data": data}
