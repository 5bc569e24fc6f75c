"""The ``guiagent`` process pauses cyclic garbage collection while it imports (start-up
speed); commands then run with it on, and ``main`` called in-process leaves it alone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from guiagent.cli import main

REPO = Path(__file__).resolve().parents[1]

# records whether collection is on while the command runs, then runs the real command
PROBE = """
import gc, sys
import guiagent.commands.skills as skills
seen = []
real = skills.run
def run(args):
    seen.append(gc.isenabled())
    return real(args)
skills.run = run
import guiagent.cli as cli
sys.argv = ["guiagent", "skills", "list"]
code = cli.main()
print("RESULT", code, seen, gc.isenabled())
"""


def test_main_in_process_leaves_collection_alone() -> None:
    frozen = gc.get_freeze_count()
    assert main(["scenario", "check", str(REPO / "scenarios/web/todos.yaml")]) == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_process_commands_run_with_collection_on() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-800:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    assert line == "RESULT 0 [True] True", line
