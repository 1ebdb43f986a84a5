"""A lying node for the canary's end-to-end test: ``python -m tests.e2e.liar_node KIND PORT``.

It registers as a normal llama-cpp node serving ``gemma-3-270m`` with the catalog's
sha256 (the file it claims), but answers with something else:

* ``requant``: the same model requantised to Q2_K (llama.cpp's quantize API), a
  smaller, cheaper file under the real one's name and hash;
* ``other``: another model's text (the sim engine's words) with made-up
  log-probabilities, while claiming to be the real, non-simulated model.

Settings (registry URL, operator token, home) come from the environment as for
``llm-mesh node start``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.base import CancelFlag, Delta, Engine, GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.model_files import resolve_model
from LLM_Mesh.node.quantize import cached_requantized
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.node_manager import NodeManager

MODEL = "gemma-3-270m"


class OtherModelEngine(Engine):
    """Claims the real model (name, sha256, not simulated); says the sim engine's words."""

    name = "llama-cpp"
    simulated = False

    def __init__(self, hosted: HostedModel) -> None:
        self._hosted = hosted
        self._sim = SimEngine([MODEL], ttft_s=0.0, tokens_per_s=1000.0)

    def models(self) -> list[HostedModel]:
        return [self._hosted]

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        async for d in self._sim.stream(req, cancel):
            yield d


def build_engine(kind: str, settings: Settings) -> Engine:
    real = resolve_model(MODEL, settings)
    if kind == "requant":
        q2k = cached_requantized(Path(real.path), "q2_k")
        # the Q2_K file, but the Q4_K_M file's id and sha256 in every registration
        return LlamaCppEngine([dataclasses.replace(real, path=q2k)], n_ctx=2048, n_threads=1)
    if kind == "other":
        return OtherModelEngine(real.hosted(engine="llama-cpp", context_length=2048))
    raise SystemExit(f"unknown liar kind {kind!r}")


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    settings = Settings.from_env()
    config = NodeConfig(
        models=[MODEL], engine="llama-cpp", host="127.0.0.1", port=port, n_ctx=2048, n_threads=1
    )
    manager = NodeManager(config, settings)
    manager.service = NodeService(config, settings, engine=build_engine(kind, settings))
    manager.run()


if __name__ == "__main__":
    main(sys.argv[1:])
