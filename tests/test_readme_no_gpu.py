"""The README's "Try the agent loop without a GPU" section, run exactly as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from guiagent.grounding.ocr import OcrEngine
from guiagent.record import load

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Try the agent loop without a GPU"

pytestmark = pytest.mark.browser


def readme_section_commands() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the section has no bash block"
    return block.group(1)


def test_the_section_is_three_commands():
    commands = [line for line in readme_section_commands().splitlines() if line.strip()]
    assert len(commands) == 3 and all(c.startswith("guiagent ") for c in commands)


def test_the_no_gpu_section_runs_as_written(tmp_path):
    commands = readme_section_commands()
    # the section runs from the repository; a scratch copy of its layout keeps runs/ out of it
    for name in ("guiagent", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    stop = re.search(r"^guiagent fake-model --stop.*$", commands, re.M)
    assert stop
    try:
        done = subprocess.run(
            ["bash", "-e", "-c", commands],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["bash", "-c", stop.group(0)], cwd=tmp_path, env=env, capture_output=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "finished after 9 steps" in output and "stopped the stand-in model" in output
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load(run_dir)
    assert run.header.status == "finished"
    assert [s.action["action"] for s in run.steps].count("click") == 5
    assert all(s.outcome == "ok" for s in run.steps)
    # the final screen really shows alice's list with the new item on it
    final = Image.open(run_dir / run.steps[-1].frame).convert("RGB")
    import numpy as np

    words = " ".join(box.text for box in OcrEngine().recognise(np.asarray(final)))
    assert "buy milk" in words and "alice" in words, words
