#!/usr/bin/env bash
# Installs uv if needed and syncs the workspace. Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (Python package manager)…" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
export UV_LINK_MODE=copy
