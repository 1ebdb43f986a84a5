"""The node: hosts models and serves them over the OpenAI API.

``config`` (NodeConfig, node.toml), ``model_files`` (references → GGUF),
``engines`` (llama-cpp, openai upstream, sim), ``admission`` (bounded queue),
``agent`` (registration + heartbeats), ``service`` (the wiring), ``app`` (HTTP).
Importing this package imports no engine and starts nothing, and nothing outside
the standard library: its names load on first use, so ``python -m
LLM_Mesh.node.hardware`` runs on a bare Python (``setup-node-operator.sh --dry-run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from LLM_Mesh.node.config import NodeConfig, load_node_config, save_node_config

__all__ = ["NodeConfig", "load_node_config", "save_node_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from LLM_Mesh.node import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
