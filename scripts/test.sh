#!/usr/bin/env bash
# Runs the test suite (installs first; idempotent). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# a real headless browser for the report's tests (Debian's chromium), when we may install it
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || echo "warning: could not install chromium; browser tests will skip"
fi
. .venv/bin/activate
export KEDRO_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# lint and format (configured in pyproject.toml) before the tests
ruff check src tests benchmarks scripts
ruff format --check src tests benchmarks scripts
python -m pytest -q "$@"
