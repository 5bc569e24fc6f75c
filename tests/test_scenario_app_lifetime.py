"""A scenario owns the app it launches: killing the run (even with SIGKILL) ends the app,
also on a display the run does not own (the user's screen)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guiagent.envs.display import XvfbDisplay
from guiagent.testing.processes import child_pids, is_alive

SCENARIO = """\
name: app lifetime probe
target:
  command: [{python}, -c, "import tkinter as t; r = t.Tk(); r.title('lifetime probe'); r.mainloop()"]
  window: lifetime probe
steps:
  - wait_for: {{text: "this text never shows", timeout: 120}}
"""


@pytest.mark.desktop
def test_sigkill_of_a_scenario_run_ends_the_app_it_launched(
    tmp_path: Path, x_display: XvfbDisplay
) -> None:
    scenario = tmp_path / "probe.yaml"
    scenario.write_text(SCENARIO.format(python=sys.executable))
    proc = subprocess.Popen(
        [sys.executable, "-m", "guiagent.cli", "scenario", "run", str(scenario)],
        env={**os.environ, **x_display.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    apps: list[int] = []
    try:
        guard = time.monotonic() + 90
        while not apps:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < guard, "the scenario never launched its app"
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^lifetime probe$"],
                env={**os.environ, **x_display.env},
                capture_output=True,
            )
            if found.returncode == 0:
                apps = [
                    pid
                    for pid in child_pids(proc.pid)
                    if b"lifetime probe" in Path(f"/proc/{pid}/cmdline").read_bytes()
                ]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    guard = time.monotonic() + 30
    while any(is_alive(pid) for pid in apps) and time.monotonic() < guard:
        time.sleep(0.1)
    assert not any(is_alive(pid) for pid in apps), "the scenario's app outlived the killed run"
