#!/usr/bin/env bash
# Sets up and runs the whole system in one process (embedded mode: SQLite, in-process
# queue, local AI). Options go to `hitl up`, e.g. ./run.sh --port 9000 --data-dir /tmp/hitl
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
uv sync --all-packages --frozen --no-dev --quiet
exec uv run --no-sync hitl up "$@"
