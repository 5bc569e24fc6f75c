"""Benchmark: CLI start-up, whole processes, paired with the imports it is compared against.

Each round runs, one after the other, ``guiagent --help``, ``python -c "import
playwright.async_api"`` and a bare ``python -c pass``, so a busy machine slows all three
alike; the figures are medians over the rounds, the load average is in the note.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

COMMANDS: dict[str, list[str]] = {
    "guiagent --help": [sys.executable, "-m", "guiagent.cli", "--help"],
    "import playwright.async_api": [sys.executable, "-c", "import playwright.async_api"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return (time.perf_counter() - t) * 1000


def run(quick: bool = False) -> list[dict[str, Any]]:
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(3 if quick else 9):
        for name, cmd in COMMANDS.items():
            samples[name].append(_time(cmd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    load = os.getloadavg()[0]
    cli = medians["guiagent --help"]
    return [
        {
            "name": "cli start-up: guiagent --help",
            "median_ms": round(cli, 1),
            "baseline_ms": round(medians["import playwright.async_api"], 1),
            "ratio": round(cli / medians["import playwright.async_api"], 2),
            "note": f"baseline: importing Playwright; target <= 250 ms; load {load:.1f}",
        },
        {
            "name": "cli start-up: bare python",
            "median_ms": round(medians["python -c pass"], 1),
            "note": f"the interpreter alone, same rounds; load {load:.1f}",
        },
    ]
