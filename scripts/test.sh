#!/usr/bin/env bash
# The whole test suite: lint, then pytest (unit, BPMN toolkit, real engine, embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check das tests bench
python3 -m pytest -q "$@"
