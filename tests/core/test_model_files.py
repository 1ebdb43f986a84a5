"""Model-file recognition by magic bytes (core/model_files.py)."""

from __future__ import annotations

import json
import os
import struct

import pytest

from LLM_Mesh.core.model_files import (
    SAFETENSORS_MAX_HEADER,
    GGUFHeader,
    check_gguf_header,
    detect_model_format,
    detect_weights_format,
    fake_gguf,
    ggml_variant,
    is_safetensors,
)


def safetensors_bytes(meta: dict[str, object]) -> bytes:
    body = json.dumps(meta).encode()
    return struct.pack("<Q", len(body)) + body + b"\0" * 16


@pytest.mark.parametrize("version", [1, 2, 3])
def test_gguf_versions_detected_and_parsed(version: int) -> None:
    head = fake_gguf(version, tensors=7, kvs=11)
    assert detect_model_format(head) == "gguf"
    assert check_gguf_header(head) == GGUFHeader(
        version=version, tensor_count=7, metadata_kv_count=11
    )


def test_gguf_v1_uses_32_bit_counts() -> None:
    head = b"GGUF" + struct.pack("<III", 1, 5, 9)
    assert check_gguf_header(head) == GGUFHeader(1, 5, 9)


@pytest.mark.parametrize("version", [0, 4, 99, 0xFFFFFFFF])
def test_gguf_magic_with_unknown_version_is_not_a_model(version: int) -> None:
    head = b"GGUF" + struct.pack("<IQQ", version, 0, 0)
    assert detect_model_format(head) is None
    with pytest.raises(ValueError, match="unsupported GGUF version"):
        check_gguf_header(head)


def test_big_endian_gguf_detected_but_refused_clearly() -> None:
    head = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    assert detect_model_format(head) == "gguf"
    with pytest.raises(ValueError, match="big-endian"):
        check_gguf_header(head)


def test_ggml_magics_are_little_endian_on_disk() -> None:
    assert ggml_variant(b"lmgg" + b"\0" * 8) == "ggml"
    assert ggml_variant(b"fmgg" + struct.pack("<I", 1)) == "ggmf"
    assert ggml_variant(b"tjgg" + struct.pack("<I", 3)) == "ggjt"
    assert detect_model_format(b"tjgg" + struct.pack("<I", 3)) == "ggml"
    # The big-endian spelling is *not* what llama.cpp wrote.
    assert detect_model_format(b"ggjt" + struct.pack("<I", 3)) is None
    assert detect_model_format(b"ggml" + b"\0" * 8) is None


def test_versioned_ggml_needs_a_sane_version() -> None:
    assert ggml_variant(b"tjgg" + struct.pack("<I", 77)) is None
    assert ggml_variant(b"tjgg") is None


def test_ggml_header_refused_by_gguf_check_with_hint() -> None:
    with pytest.raises(ValueError, match="convert_llama_ggml_to_gguf"):
        check_gguf_header(b"tjgg" + struct.pack("<I", 3) + b"\0" * 16)


@pytest.mark.parametrize(
    "head",
    [b"", b"GGU", b"PK\x03\x04" + b"\0" * 30, b"\x7fELF" + b"\0" * 30, b"hello world, plain text"],
)
def test_non_models(head: bytes) -> None:
    assert detect_model_format(head) is None
    assert detect_weights_format(head) is None
    with pytest.raises(ValueError, match="not a GGUF file"):
        check_gguf_header(head)


def test_truncated_gguf_header() -> None:
    with pytest.raises(ValueError, match="truncated"):
        check_gguf_header(b"GGUF" + struct.pack("<I", 3) + b"\0" * 4)


def test_safetensors_by_header() -> None:
    data = safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    assert is_safetensors(data[:64])
    assert detect_weights_format(data[:64], len(data)) == "safetensors"
    assert detect_model_format(data[:64]) is None
    # Header length says more than the file holds: not safetensors.
    assert not is_safetensors(data[:64], file_size=20)
    assert not is_safetensors(struct.pack("<Q", 10) + b"[not json")


def test_random_bytes_are_not_models() -> None:
    for _ in range(200):
        head = os.urandom(64)
        if head[:4] in (b"GGUF", b"lmgg", b"fmgg", b"tjgg"):
            continue
        assert detect_model_format(head) is None


def test_safetensors_boundaries() -> None:
    # the smallest header: 8 length bytes, then a 2-byte JSON object starting '{'
    assert is_safetensors(struct.pack("<Q", 2) + b"{")
    assert not is_safetensors(struct.pack("<Q", 2))  # no header byte at all
    for n in (0, 1):  # a length too short for any JSON object
        assert not is_safetensors(struct.pack("<Q", n) + b"{}")
    assert is_safetensors(struct.pack("<Q", SAFETENSORS_MAX_HEADER) + b"{")
    assert not is_safetensors(struct.pack("<Q", SAFETENSORS_MAX_HEADER + 1) + b"{")
    assert not is_safetensors(struct.pack("<Q", 2**64 - 1) + b"{")
    # a file exactly as long as length + header holds is whole; one byte less is truncated
    head = struct.pack("<Q", 10) + b'{"a": "b"}'
    assert is_safetensors(head, file_size=18)
    assert not is_safetensors(head, file_size=17)
    assert detect_weights_format(head, 18) == "safetensors"
    assert detect_weights_format(head, 17) is None


def test_eight_bytes_are_enough_to_recognise_gguf() -> None:
    assert detect_model_format(b"GGUF" + struct.pack("<I", 3)) == "gguf"
    assert detect_model_format(b"GGUF" + struct.pack("<I", 3)[:3]) is None


def test_weights_format_prefers_the_llama_cpp_formats() -> None:
    assert detect_weights_format(fake_gguf(3, tensors=1, kvs=2)) == "gguf"
    assert detect_weights_format(b"tjgg" + struct.pack("<I", 3)) == "ggml"


def test_ggml_version_range_is_one_to_three() -> None:
    for version in (1, 2, 3):
        assert ggml_variant(b"fmgg" + struct.pack("<I", version)) == "ggmf"
    for version in (0, 4, 0xFFFFFFFF):
        assert ggml_variant(b"fmgg" + struct.pack("<I", version)) is None
    assert ggml_variant(b"fmg") is None


def test_gguf_header_of_exactly_eight_bytes_is_truncated_not_foreign() -> None:
    with pytest.raises(ValueError, match="truncated GGUF header: 8 bytes, need 24"):
        check_gguf_header(b"GGUF" + struct.pack("<I", 3))
    with pytest.raises(ValueError, match="truncated GGUF header: 12 bytes, need 16"):
        check_gguf_header(b"GGUF" + struct.pack("<II", 1, 0))
    with pytest.raises(ValueError, match="only 7 bytes"):
        check_gguf_header(b"GGUF\x03\x00\x00")


def test_gguf_errors_name_what_was_found() -> None:
    with pytest.raises(
        ValueError, match=r"unsupported GGUF version 4294967295: expected one of \[1, 2, 3\]"
    ):
        check_gguf_header(b"GGUF" + struct.pack("<IQQ", 0xFFFFFFFF, 0, 0))
    with pytest.raises(ValueError, match=r"^big-endian GGUF file"):
        check_gguf_header(b"GGUF" + struct.pack(">IQQ", 2, 0, 0))
    with pytest.raises(ValueError) as info:
        check_gguf_header(b"tjgg" + struct.pack("<I", 1) + b"\0" * 16)
    assert str(info.value) == (
        "old GGML model file ('ggjt'), not GGUF: convert it with llama.cpp's "
        "convert_llama_ggml_to_gguf.py before serving it"
    )
    with pytest.raises(ValueError, match=r"magic is b'PK\\x03\\x04', expected b'GGUF'"):
        check_gguf_header(b"PK\x03\x04" + b"\0" * 30)


def test_gguf_counts_are_unsigned() -> None:
    big = fake_gguf(3, tensors=2**64 - 1, kvs=2**63)
    assert check_gguf_header(big) == GGUFHeader(3, 2**64 - 1, 2**63)
    v1 = fake_gguf(1, tensors=2**32 - 1, kvs=2**31)
    assert len(v1) == 16
    assert check_gguf_header(v1) == GGUFHeader(1, 2**32 - 1, 2**31)


def test_fake_gguf_defaults_and_payload() -> None:
    head = fake_gguf()
    assert head == b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    assert check_gguf_header(fake_gguf(2, payload=b"xyz")) == GGUFHeader(2, 0, 0)
    assert fake_gguf(2, payload=b"xyz").endswith(b"xyz")
