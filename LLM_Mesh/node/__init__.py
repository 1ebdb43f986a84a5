"""The node: hosts models and serves them over the OpenAI API.

``config`` (NodeConfig, node.toml), ``model_files`` (references → GGUF),
``engines`` (llama-cpp, openai upstream, sim), ``admission`` (bounded queue),
``agent`` (registration + heartbeats), ``service`` (the wiring), ``app`` (HTTP).
Importing this package imports no engine and starts nothing.
"""

from LLM_Mesh.node.config import NodeConfig, load_node_config, save_node_config

__all__ = ["NodeConfig", "load_node_config", "save_node_config"]
