"""The registry + gateway service: nodes register under ``/mesh``, clients use ``/v1``.

Importing this package does nothing but define names (the SQL store is imported
only when an app without an injected store starts).
"""

from LLM_Mesh.registry.app import create_registry_app, serve
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import NodeRecord, RequestRecord, Store

__all__ = [
    "MemoryStore",
    "NodeRecord",
    "NodeTable",
    "RequestRecord",
    "Store",
    "create_registry_app",
    "serve",
]
