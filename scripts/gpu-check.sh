#!/usr/bin/env bash
# The node's GPU checks, for a machine with an NVIDIA GPU and the CUDA toolkit
# (run once on the project's lent GPU machine; see docs/benchmarks.md "GPU").
#   1. hardware detection sees the GPU and its VRAM; the plan proposes models for it;
#   2. scripts/install-llama-cpp.sh with LLM_MESH_GPU=cuda builds llama-cpp-python
#      with CUDA and the build reports GPU offload support.
# Offline machines: put the llama-cpp-python sdist and pure wheels in $CARRY
# (default .devcarry/); the build then uses the machine's scikit-build-core/cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY="${CARRY:-.devcarry}"
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/$CARRY" PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv
echo "== nvcc"; nvcc --version | tail -2

VPY="${VPY:-$(command -v python3)}"   # the machine's Python with its CUDA stack
"$VPY" -m pip install -q pydantic tomli-w diskcache

echo "== hardware detection + plan (LLM_Mesh.node.hardware)"
PYTHONPATH="$PWD" "$VPY" -m LLM_Mesh.node.hardware --plan --home "$OUT/home" | tee "$OUT/hardware.json"

echo "== CUDA build of llama-cpp-python (scripts/install-llama-cpp.sh, LLM_MESH_GPU=cuda)"
start=$(date +%s)
LLM_MESH_GPU=cuda LLM_MESH_CUDA_ARCH="${LLM_MESH_CUDA_ARCH:-90}" LLM_MESH_NO_BUILD_ISOLATION=1 \
  LLM_MESH_WHEELHOUSE="$OUT/wheels" bash scripts/install-llama-cpp.sh "$VPY" 2>&1 | tail -15
echo "build took $(( $(date +%s) - start )) s"
"$VPY" - <<'PYEOF' | tee "$OUT/llama.txt"
import llama_cpp
print("llama_cpp", llama_cpp.__version__)
print("supports_gpu_offload", llama_cpp.llama_supports_gpu_offload())
print(llama_cpp.llama_print_system_info().decode())
PYEOF
echo "== second run reuses the wheel"
LLM_MESH_GPU=cuda LLM_MESH_CUDA_ARCH="${LLM_MESH_CUDA_ARCH:-90}" LLM_MESH_NO_BUILD_ISOLATION=1 \
  LLM_MESH_WHEELHOUSE="$OUT/wheels" bash scripts/install-llama-cpp.sh "$VPY" 2>&1 | tail -2
