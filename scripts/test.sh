#!/usr/bin/env bash
# The whole test suite: lint, layer contracts, types, then pytest (unit, BPMN toolkit, real engine, embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check das tests bench
python3 -m ruff format --check das tests bench   # one formatter: `ruff format das tests bench` fixes it
lint-imports                      # the layer contracts in pyproject.toml (docs/ARCHITECTURE.md)
python3 -m mypy                   # all of das/; the modules that hold DAS's promises strictly
python3 -m pytest -q "$@"
