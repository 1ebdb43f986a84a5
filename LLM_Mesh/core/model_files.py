"""Recognising model files by their first bytes, never by their name.

Pure functions over the head of a file (read :data:`HEAD_BYTES` bytes and pass
them in). The formats:

| format        | on disk                                                              |
|---------------|----------------------------------------------------------------------|
| GGUF          | ``b"GGUF"``, version uint32 LE (1..3), tensor count, metadata count  |
|               | (uint32 each in v1, uint64 each in v2 and v3)                         |
| GGML (old)    | llama.cpp wrote a uint32 magic *little-endian*, so 'ggml' 0x67676d6c |
|               | is ``b"lmgg"`` (unversioned), 'ggmf' 0x67676d66 is ``b"fmgg"`` and   |
|               | 'ggjt' 0x67676a74 is ``b"tjgg"`` (both followed by a uint32 version) |
| safetensors   | header length uint64 LE, then that many bytes of JSON starting '{'   |

A current llama.cpp loads only GGUF; GGML files must be converted first
(``convert_llama_ggml_to_gguf.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

HEAD_BYTES = 64
"""How many bytes of a file's head the functions here need at most."""

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (1, 2, 3)

GGML_MAGICS: dict[bytes, str] = {
    struct.pack("<I", 0x67676D6C): "ggml",  # b"lmgg", unversioned
    struct.pack("<I", 0x67676D66): "ggmf",  # b"fmgg", + uint32 version
    struct.pack("<I", 0x67676A74): "ggjt",  # b"tjgg", + uint32 version (1..3)
}

# A safetensors JSON header larger than this is not believed (real ones are KBs to a few MB).
SAFETENSORS_MAX_HEADER = 100_000_000

ModelFormat = Literal["gguf", "ggml"]
WeightsFormat = Literal["gguf", "ggml", "safetensors"]


@dataclass(frozen=True)
class GGUFHeader:
    """The fixed part of a GGUF header."""

    version: int
    tensor_count: int
    metadata_kv_count: int


def _u32le(head: bytes, offset: int) -> int | None:
    if len(head) < offset + 4:
        return None
    value: int = struct.unpack_from("<I", head, offset)[0]
    return value


def _gguf_version_ok(head: bytes) -> bool:
    """GGUF magic and a known version, written little- or big-endian."""
    if not head.startswith(GGUF_MAGIC) or len(head) < 8:
        return False
    le = struct.unpack_from("<I", head, 4)[0]
    be = struct.unpack_from(">I", head, 4)[0]
    return le in GGUF_VERSIONS or be in GGUF_VERSIONS


def ggml_variant(head: bytes) -> str | None:
    """``"ggml"``, ``"ggmf"`` or ``"ggjt"`` for an old llama.cpp file, else ``None``."""
    variant = GGML_MAGICS.get(head[:4])
    if variant is None:
        return None
    if variant == "ggml":
        return variant
    version = _u32le(head, 4)
    if version is None or not 1 <= version <= 3:
        return None
    return variant


def detect_model_format(head: bytes) -> ModelFormat | None:
    """``"gguf"`` or ``"ggml"`` when ``head`` starts a llama.cpp model file, else ``None``.

    A GGUF magic with an unknown version is not taken for a model.
    """
    if _gguf_version_ok(head):
        return "gguf"
    if ggml_variant(head) is not None:
        return "ggml"
    return None


def is_safetensors(head: bytes, file_size: int | None = None) -> bool:
    """True when ``head`` starts a safetensors file (8-byte LE length, then JSON ``{``)."""
    if len(head) < 9:
        return False
    n: int = struct.unpack_from("<Q", head, 0)[0]
    if n < 2 or n > SAFETENSORS_MAX_HEADER:
        return False
    if file_size is not None and file_size < 8 + n:
        return False
    return head[8:9] == b"{"


def detect_weights_format(head: bytes, file_size: int | None = None) -> WeightsFormat | None:
    """Any model-weights format recognised here: GGUF, GGML or safetensors."""
    fmt = detect_model_format(head)
    if fmt is not None:
        return fmt
    if is_safetensors(head, file_size):
        return "safetensors"
    return None


def check_gguf_header(head: bytes) -> GGUFHeader:
    """Parse the fixed GGUF header, or raise ``ValueError`` saying what is wrong."""
    if len(head) < 8:
        raise ValueError(f"not a GGUF file: only {len(head)} bytes, a GGUF header needs at least 8")
    magic = head[:4]
    if magic != GGUF_MAGIC:
        variant = ggml_variant(head)
        if variant is not None:
            raise ValueError(
                f"old GGML model file ('{variant}'), not GGUF: convert it with llama.cpp's "
                "convert_llama_ggml_to_gguf.py before serving it"
            )
        raise ValueError(f"not a GGUF file: magic is {magic!r}, expected {GGUF_MAGIC!r}")
    version: int = struct.unpack_from("<I", head, 4)[0]
    if version not in GGUF_VERSIONS:
        if struct.unpack_from(">I", head, 4)[0] in GGUF_VERSIONS:
            raise ValueError("big-endian GGUF file: this node reads little-endian GGUF only")
        raise ValueError(
            f"unsupported GGUF version {version}: expected one of {list(GGUF_VERSIONS)}"
        )
    fmt = "<II" if version == 1 else "<QQ"
    need = 8 + struct.calcsize(fmt)
    if len(head) < need:
        raise ValueError(f"truncated GGUF header: {len(head)} bytes, need {need}")
    tensors, kvs = struct.unpack_from(fmt, head, 8)
    return GGUFHeader(version=version, tensor_count=int(tensors), metadata_kv_count=int(kvs))


def fake_gguf(version: int = 3, *, tensors: int = 0, kvs: int = 0, payload: bytes = b"") -> bytes:
    """A tiny file body with a real GGUF header (for tests and examples; not loadable)."""
    fmt = "<II" if version == 1 else "<QQ"
    return GGUF_MAGIC + struct.pack("<I", version) + struct.pack(fmt, tensors, kvs) + payload
