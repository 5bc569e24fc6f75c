#!/usr/bin/env bash
# Set up (when needed) and run the whole test suite: unit tests, end-to-end tests in headless
# Chromium and under Xvfb, and the shipped scenarios through the pytest plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest tests scenarios -q -n 2 -p no:cacheprovider "$@"
