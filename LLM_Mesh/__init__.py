"""Free-S_Code LLM Mesh: community nodes host models, a registry routes requests.

Importing the package does nothing but define names: no I/O, no environment
reads, no logging set-up. The seed's modules are the public face:
``LLM_Mesh.distributed_models``, ``LLM_Mesh.mesh_manager``, ``LLM_Mesh.node_manager``.
"""

from LLM_Mesh.errors import (
    ContextLengthExceeded,
    EngineError,
    InvalidRequest,
    MeshError,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    RegistryUnreachable,
    UnknownNode,
    UpstreamError,
    UpstreamTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "ContextLengthExceeded",
    "EngineError",
    "InvalidRequest",
    "MeshError",
    "ModelNotFound",
    "ModelUnavailable",
    "Overloaded",
    "PayloadTooLarge",
    "RegistryUnreachable",
    "UnknownNode",
    "UpstreamError",
    "UpstreamTimeout",
    "__version__",
]
