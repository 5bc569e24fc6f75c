"""The README's Python example, extracted from README.md and run exactly as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_api_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, "README.md's Python API section has no ```python block"
    return match.group(1)


def test_readme_python_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(python_api_example(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the run finished, and the click really landed: the page's title changed
    assert proc.stdout.strip() == "finished pressed Go | pressed", proc.stdout + proc.stderr
