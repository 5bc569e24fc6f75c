"""Demo applications used by tests, examples and benchmarks.

- ``webapp/``: a static single-page app (login, todos, settings) that exposes its state as
  ``window.demoState``; serve the folder with any static HTTP server.
- ``tkapp.py``: a small Tk desktop app that writes its state as JSON to ``--state-file``.
"""

from __future__ import annotations

from pathlib import Path

WEBAPP_DIR: Path = Path(__file__).resolve().parent / "webapp"
TKAPP_PATH: Path = Path(__file__).resolve().parent / "tkapp.py"

__all__ = ["TKAPP_PATH", "WEBAPP_DIR"]
