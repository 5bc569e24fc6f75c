"""The README's demo on a fresh clone leaves the clone clean: user runs go to the ignored runs/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout: nothing to clone"),
]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_the_demo_with_its_defaults_leaves_a_fresh_clone_clean(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert _git("status", "--porcelain", cwd=clone) == ""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("DISPLAY", None)  # as on a fresh machine: the demo starts its own Xvfb
    done = subprocess.run(
        [sys.executable, "-m", "guiagent.cli", "demo"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    runs = [p for p in (clone / "runs").iterdir() if p.name.startswith("demo-")]
    assert len(runs) == 1, output[-2000:]
    assert (runs[0] / "task" / "run.json").is_file()
    assert "runs/" + runs[0].name in output.replace("\n", "")  # the output names the folder
    assert "Traceback" not in output
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    assert not (clone / "recordings" / "runs").exists()
