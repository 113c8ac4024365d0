#!/usr/bin/env bash
# Sets up and runs every check: lint, format, types, then the tests against the machine's
# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), real Chromium and promtool.
# Extra arguments go to pytest, e.g. ./test.sh tests/ingest -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${need_apt[*]} from Debian…" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "missing ${need_apt[*]}: install them (apt-get install ${need_apt[*]}) for the browser and deploy tests" >&2
  fi
fi

uv sync --all-packages --frozen --quiet
echo "== ruff check"; uv run --no-sync ruff check .
echo "== ruff format --check"; uv run --no-sync ruff format --check .
echo "== mypy"; uv run --no-sync mypy
echo "== pytest"
exec uv run --no-sync pytest -p no:cacheprovider "$@"
