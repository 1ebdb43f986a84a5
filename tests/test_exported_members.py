"""The public API is deliberate, and importing the package does nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import LLM_Mesh
import LLM_Mesh.distributed_models
import LLM_Mesh.mesh_manager

EXPECTED = [
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


def test_all_is_pinned() -> None:
    assert LLM_Mesh.__all__ == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in LLM_Mesh.__all__:
        assert hasattr(LLM_Mesh, name), name
    assert isinstance(LLM_Mesh.__version__, str)


def test_exported_errors_are_the_tree() -> None:
    for name in EXPECTED:
        if name != "__version__":
            assert issubclass(getattr(LLM_Mesh, name), LLM_Mesh.MeshError), name


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            LLM_Mesh.distributed_models,
            [
                "DistributedModelRegistry",
                "ModelResponse",
                "get_model_response",
                "initialize_distributed_models",
                "main",
                "model_registry",
            ],
        ),
        (LLM_Mesh.mesh_manager, ["MeshManager", "TaskResult", "handle_task", "mesh_manager"]),
    ],
)
def test_seed_modules_all(module: object, names: list[str]) -> None:
    assert module.__all__ == names  # type: ignore[attr-defined]
    for name in names:
        assert hasattr(module, name), name


# Run in a fresh interpreter: record every LLM_MESH_* env read, refuse sockets,
# then import the package and the seed modules.
PROBE = textwrap.dedent(
    """
    import collections.abc, logging, os, socket, sys

    reads = []

    class Spy(collections.abc.MutableMapping):
        def __init__(self, inner):
            self.inner = inner
        def _note(self, key):
            if isinstance(key, str) and key.startswith("LLM_MESH"):
                reads.append(key)
        def __getitem__(self, key):
            self._note(key)
            return self.inner[key]
        def __setitem__(self, key, value):
            self.inner[key] = value
        def __delitem__(self, key):
            del self.inner[key]
        def __iter__(self):
            return iter(self.inner)
        def __len__(self):
            return len(self.inner)
        def __contains__(self, key):
            self._note(key)
            return key in self.inner
        def get(self, key, default=None):
            self._note(key)
            return self.inner.get(key, default)
        def copy(self):
            return dict(self.inner)

    os.environ = Spy(os.environ)

    def no_network(*args, **kwargs):
        raise AssertionError("network I/O at import")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    socket.getaddrinfo = no_network

    handlers_before = list(logging.getLogger().handlers)

    import LLM_Mesh
    import LLM_Mesh.distributed_models
    import LLM_Mesh.mesh_manager

    assert LLM_Mesh.distributed_models.model_registry._settings is None
    assert logging.getLogger().handlers == handlers_before, "logging configured at import"
    if reads:
        sys.stderr.write("env read at import: " + ", ".join(reads))
        sys.exit(3)
    """
)


def test_import_does_no_io_and_reads_no_env() -> None:
    env = dict(os.environ)
    env["LLM_MESH_REGISTRY_URL"] = "::not a url::"
    env["LLM_MESH_HEARTBEAT_S"] = "not-a-number"
    env["LLM_MESH_DATABASE_URL"] = "nope://"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""


def test_plain_import_with_invalid_env_prints_nothing() -> None:
    env = dict(os.environ)
    env["LLM_MESH_REGISTRY_URL"] = "::not a url::"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import LLM_Mesh, LLM_Mesh.distributed_models, LLM_Mesh.mesh_manager",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == proc.stderr == ""
