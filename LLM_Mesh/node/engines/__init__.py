"""Model backends a node serves with: ``llama-cpp``, ``openai`` (upstream), ``sim``.

Only the contract is imported here; each engine module is imported when used.
"""

from LLM_Mesh.node.engines.base import (
    CancelFlag,
    Delta,
    Engine,
    GenerationRequest,
    Usage,
    batches_in_thread,
    iterate_in_thread,
)

__all__ = [
    "CancelFlag",
    "Delta",
    "Engine",
    "GenerationRequest",
    "Usage",
    "batches_in_thread",
    "iterate_in_thread",
]
