#!/usr/bin/env bash
# Set up everything and run the whole test suite (what CI runs): creates .venv, installs the project with its
# development extras, lints with ruff and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh dev
ruff check .
python -m pytest "$@"
