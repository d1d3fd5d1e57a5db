#!/usr/bin/env bash
# Set up everything and run the main job end to end on the embedded defaults:
# creates .venv, installs the project, generates a sample CRM world under data/ (if none is there),
# materialises every asset for the sample's date range and prints where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
crm-pipeline demo
