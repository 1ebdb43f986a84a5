#!/usr/bin/env bash
# Install llama-cpp-python into a Python environment, built *portable*.
#
# llama-cpp-python has no binary wheel; pip builds it from source. A native
# build (-DGGML_NATIVE=ON, the default) may use CPU instructions (AMX tiles)
# that the CPU advertises but the sandbox forbids: the process then dies with
# SIGILL on the first matrix multiply. So we:
#   1. never take a llama-cpp-python wheel from pip's cache (it may be native);
#   2. build once with CMAKE_ARGS="-DGGML_NATIVE=OFF" into our own wheelhouse;
#   3. install from that wheelhouse only (--no-index), reusing it next time.
#
# Usage: scripts/install-llama-cpp.sh [PYTHON]      (default: .venv/bin/python)
# Env:   LLM_MESH_WHEELHOUSE  where portable wheels are kept
#                             (default ~/.cache/llm-mesh/wheels)
#        LLM_MESH_GPU=cuda    build the CUDA variant instead (-DGGML_CUDA=on)
#        LLM_MESH_CUDA_ARCH   with cuda: CMAKE_CUDA_ARCHITECTURES (e.g. 90 for H100,
#                             "native" for this machine's GPU); default: llama.cpp's list
#        LLM_MESH_NO_BUILD_ISOLATION=1  build with the environment's own scikit-build-core
#                             and cmake (for machines without a package index)
set -euo pipefail

PY="${1:-.venv/bin/python}"
VERSION="${LLAMA_CPP_VERSION:-0.3.16}"
GPU="${LLM_MESH_GPU:-cpu}"
BASE="${LLM_MESH_WHEELHOUSE:-$HOME/.cache/llm-mesh/wheels}"
HOUSE="$BASE/llama-cpp-python-$VERSION-$GPU${LLM_MESH_CUDA_ARCH:+-sm$LLM_MESH_CUDA_ARCH}-portable"

if ! [ -x "$PY" ]; then
  echo "install-llama-cpp: no Python at $PY (create the venv first)" >&2
  exit 2
fi

prefix="$("$PY" -c 'import sys; print(sys.prefix)')"
marker="$prefix/.llm-mesh-llama-portable-$VERSION-$GPU"
if [ -f "$marker" ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '$VERSION')" 2>/dev/null; then
  echo "install-llama-cpp: llama-cpp-python $VERSION ($GPU, portable) already installed"
  exit 0
fi

case "$GPU" in
  cpu)  CMAKE_FLAGS="-DGGML_NATIVE=OFF" ;;
  cuda)
    CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on"
    if [ -n "${LLM_MESH_CUDA_ARCH:-}" ]; then
      CMAKE_FLAGS="$CMAKE_FLAGS -DCMAKE_CUDA_ARCHITECTURES=$LLM_MESH_CUDA_ARCH"
    fi
    ;;
  *) echo "install-llama-cpp: LLM_MESH_GPU must be cpu or cuda, not '$GPU'" >&2; exit 2 ;;
esac

mkdir -p "$HOUSE"
if ! ls "$HOUSE"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "install-llama-cpp: building llama-cpp-python $VERSION portable ($CMAKE_FLAGS)"
  echo "install-llama-cpp: this takes about 4-5 minutes once; the wheel is kept in $HOUSE"
  # A wheel pip cached from an earlier (maybe native) build must not slip in.
  "$PY" -m pip cache remove llama_cpp_python >/dev/null 2>&1 || true
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  isolation=()
  if [ "${LLM_MESH_NO_BUILD_ISOLATION:-0}" = 1 ]; then isolation=(--no-build-isolation); fi
  CMAKE_ARGS="$CMAKE_FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
    "$PY" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python "${isolation[@]}" \
      -w "$tmp" "llama-cpp-python==$VERSION"
  mv "$tmp"/llama_cpp_python-*.whl "$HOUSE"/
fi

"$PY" -m pip install --no-cache-dir --force-reinstall --no-deps --no-index \
  --find-links "$HOUSE" "llama-cpp-python==$VERSION"
# Its pure-Python dependencies come from the index as usual.
"$PY" -m pip install --no-cache-dir "typing-extensions>=4.5" "numpy>=1.20" "diskcache>=5.6.1" "jinja2>=2.11.3"
touch "$marker"
echo "install-llama-cpp: llama-cpp-python $VERSION ($GPU, portable) installed from $HOUSE"
