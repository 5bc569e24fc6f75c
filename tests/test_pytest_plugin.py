"""The pytest plugin: YAML scenarios collected as items (also under xdist), fixtures, failures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PAGE = """<!DOCTYPE html><html><head><title>plugin page</title>
<style>body{font:22px sans-serif;margin:16px}</style></head><body>
<input id="name" placeholder="Your name"> <button onclick="
document.getElementById('out').textContent='Hi '+document.getElementById('name').value">Greet</button>
<p id="out"></p></body></html>"""

OK = """\
name: greets
target: {url: page.html}
viewport: [420, 200]
steps:
  - type: {text: Bo, into: Your name}
  - click: Greet
  - expect: Hi Bo
"""

FAILING = """\
name: wrong greeting
target: {url: page.html}
viewport: [420, 200]
steps:
  - click: Greet
  - expect: {text: Goodbye, timeout: 0.2}
"""

PY_TEST = """
import pytest

pytest_plugins = ["guiagent.testing.fixtures"]


@pytest.mark.guiagent_url("about:blank#start")
def test_browser_env_fixture(browser_env, async_runner):
    frame = async_runner.run(browser_env.observe())
    assert frame.meta["url"].endswith("#start")
    assert frame.size.width == 1280


def test_agent_fixture_needs_a_model(agent):
    pass
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin_project")
    (root / "scenarios" / "web").mkdir(parents=True)
    (root / "scenarios" / "web" / "page.html").write_text(PAGE)
    (root / "scenarios" / "web" / "greets.yaml").write_text(OK)
    (root / "scenarios" / "web" / "wrong_greeting.yaml").write_text(FAILING)
    (root / "scenarios" / "notes.yaml").write_text("title: not a scenario\nitems: [1, 2]\n")
    (root / "other").mkdir()
    (root / "other" / "elsewhere.yaml").write_text(OK)  # not under scenarios/: not collected
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(textwrap.dedent(PY_TEST.split("\n\n\n")[0]) + "\n")
    (root / "tests" / "test_fixtures.py").write_text(PY_TEST)
    return root


def pytest_run(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_collects_only_scenario_files_under_a_scenarios_directory(project: Path) -> None:
    proc = pytest_run(project, "--collect-only", "-q", "scenarios", "other")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert collected == [
        "scenarios/web/greets.yaml::greets",
        "scenarios/web/wrong_greeting.yaml::wrong_greeting",
    ]


@pytest.mark.browser
def test_scenarios_and_fixtures_run_under_xdist_with_runner_messages(
    project: Path, tmp_path: Path
) -> None:
    record = tmp_path / "recs"
    proc = pytest_run(
        project, "-n", "2", "scenarios", "tests", "--guiagent-record", str(record), "-rf"
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 2 passed, 1 error" in out, out
    # the scenario failure is the runner's message, not a Python traceback
    assert 'step 2 (expect "Goodbye"): no text matching "Goodbye"; seen: ' in out
    assert 'ok   step 1 (click "Greet")' in out
    assert "Traceback" not in out.split("wrong_greeting")[1][:2000]
    assert "the agent fixture needs a model server: run pytest with --guiagent-model URL" in out
    runs = sorted(p.name for p in record.iterdir())
    assert len(runs) == 2 and any(r.endswith("greets") for r in runs)


def test_a_bad_scenario_file_fails_its_item_with_file_and_line(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "bad"
    (root / "scenarios").mkdir(parents=True)
    (root / "scenarios" / "bad.yaml").write_text(
        "target: {url: a.html}\nsteps:\n  - click: [1, 2]\n"
    )
    proc = pytest_run(root, "scenarios")
    assert proc.returncode == 1
    assert (
        "scenarios/bad.yaml:3: step 1 (click): expected a text or a mapping with text/image/at, got a list"
        in proc.stdout
    )


def test_the_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, guiagent.scenario.pytest_plugin as p; "
        "heavy = [m for m in ('playwright', 'pyautogui', 'mss', 'rapidocr_onnxruntime', 'guiagent.scenario.runner', 'pydantic') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
