#!/usr/bin/env bash
# Set up (when needed) and run every benchmark; prints a table (not part of the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/guiagent bench "$@"
