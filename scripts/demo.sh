#!/usr/bin/env bash
# Set up (when needed) and run the main job on its embedded default: the demo scenarios on the
# bundled web and desktop apps with the local grounder (no GPU, no model server), under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/guiagent demo "$@"
