"""Requantise a GGUF file with llama.cpp's own quantize API (llama-cpp-python).

Used to make a *lower* quantisation of a model (Q2_K, Q3_K_S of the embedded
Q4_K_M gemma-3-270m): the liar the canary probes must catch
(``benchmarks/bench_canary.py``, ``tests/e2e/test_canary.py``). Files are cached
under ``~/.cache/llm-mesh/requantized/`` (never in git), keyed by the source's
name and the target type.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

FTYPES = {"q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K", "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S"}
CACHE_DIR = Path(os.path.expanduser("~/.cache/llm-mesh/requantized"))


def requantize(src: Path, dst: Path, kind: str, *, threads: int = 1) -> Path:
    """Write ``src`` requantised to ``kind`` (``q2_k`` | ``q3_k_s``) at ``dst``."""
    import llama_cpp

    if kind not in FTYPES:
        raise ValueError(f"unknown quantisation {kind!r}; one of {sorted(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[kind])
    params.allow_requantize = True
    params.nthread = threads
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {src} → {kind}")
    tmp.replace(dst)
    return dst


def cached_requantized(src: Path, kind: str) -> Path:
    """``src`` requantised to ``kind``, made once and kept in :data:`CACHE_DIR`."""
    dst = CACHE_DIR / f"{src.stem}.{kind}.gguf"
    if dst.is_file():
        return dst
    return requantize(src, dst, kind)
