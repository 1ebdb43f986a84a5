"""Remembered sha256 of model files (node/file_hashes.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from LLM_Mesh.node.file_hashes import CACHE_NAME, HashCache, file_sha256, hash_cache

DATA = b"GGUF\x03\x00\x00\x00" + b"\x00" * 16 + b"weights"
SHA = hashlib.sha256(DATA).hexdigest()


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> str:
        self.calls += 1
        return file_sha256(path)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    f = tmp_path / "models" / "m.gguf"
    f.parent.mkdir()
    f.write_bytes(DATA)
    return f


def test_hashed_once_then_read_back(model: Path) -> None:
    h = Counting()
    assert hash_cache(model.parent, h).sha256(model) == SHA
    assert hash_cache(model.parent, h).sha256(model) == SHA
    assert h.calls == 1
    stored = json.loads((model.parent / CACHE_NAME).read_text())
    assert stored["files"][str(model.resolve())]["sha256"] == SHA


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"version": 2, "files": {}}',
        b'{"version": 1, "files": []}',
        b"[]",
    ],
)
def test_a_malformed_cache_counts_as_empty(model: Path, body: bytes) -> None:
    (model.parent / CACHE_NAME).write_bytes(body)
    h = Counting()
    assert hash_cache(model.parent, h).sha256(model) == SHA and h.calls == 1
    assert hash_cache(model.parent, h).sha256(model) == SHA and h.calls == 1  # rewritten


def test_a_remembered_hash_that_is_no_hash_is_not_believed(model: Path) -> None:
    cache = hash_cache(model.parent)
    cache.sha256(model)
    path = model.parent / CACHE_NAME
    data = json.loads(path.read_text())
    data["files"][str(model.resolve())]["sha256"] = "not-a-sha"
    path.write_text(json.dumps(data))
    h = Counting()
    assert hash_cache(model.parent, h).sha256(model) == SHA and h.calls == 1


def test_a_file_that_changes_while_it_is_hashed_is_not_remembered(model: Path) -> None:
    def changing(path: Path) -> str:
        digest = file_sha256(path)
        with path.open("ab") as f:
            f.write(b"x")
        return digest

    hash_cache(model.parent, changing).sha256(model)
    assert hash_cache(model.parent).cached(model) is None


def test_an_unwritable_cache_still_answers(model: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    h = Counting()
    cache = HashCache(blocked / CACHE_NAME, h)  # its folder is a file: cannot be written
    assert cache.sha256(model) == SHA and cache.sha256(model) == SHA
    assert h.calls == 2


def test_recorded_hashes_are_used_and_gone_files_dropped(model: Path) -> None:
    other = model.parent / "gone.gguf"
    other.write_bytes(DATA)
    cache = hash_cache(model.parent, Counting())
    cache.record(other, SHA)
    other.unlink()
    cache.record(model, SHA.upper())
    assert cache.cached(model) == SHA
    files = json.loads((model.parent / CACHE_NAME).read_text())["files"]
    assert list(files) == [str(model.resolve())]
