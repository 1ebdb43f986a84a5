"""The registry package's public names are deliberate."""

import LLM_Mesh.registry as registry


def test_all() -> None:
    assert registry.__all__ == [
        "MemoryStore",
        "NodeRecord",
        "NodeTable",
        "RequestRecord",
        "Store",
        "create_registry_app",
        "serve",
    ]
    for name in registry.__all__:
        assert getattr(registry, name) is not None
