"""Scenario discovery: a configurable glob, files named on the command line, and skills found
beside the scenario, in its project root and through --skills."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guiagent.cli import main
from guiagent.scenario.schema import load_scenario
from guiagent.scenario.skill_lookup import scenario_skills, skill_dirs

PAGE = """<!DOCTYPE html><html><head><title>p</title>
<style>body{font:22px sans-serif;margin:16px}</style></head><body>
<button onclick="document.getElementById('out').textContent='Hello there'">Greet</button>
<p id="out"></p></body></html>"""

SCENARIO = """\
name: {name}
target: {{url: page.html}}
viewport: [420, 200]
steps:
  - use: {{skill: {skill}}}
  - expect: Hello there
"""

SKILL = """\
name: {name}
description: press the greeting button
steps:
  - click: Greet
"""


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "ui-tests" / "skills").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'proj'\n")
    (root / "ui-tests" / "page.html").write_text(PAGE)
    (root / "ui-tests" / "greet.yaml").write_text(SCENARIO.format(name="greet", skill="greet_near"))
    (root / "ui-tests" / "skills" / "greet_near.yaml").write_text(SKILL.format(name="greet_near"))
    (root / "skills").mkdir()
    (root / "skills" / "greet_root.yaml").write_text(SKILL.format(name="greet_root"))
    (root / "notes.yaml").write_text("title: not a scenario\n")
    return root


def _collected(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_a_yaml_file_named_on_the_command_line_is_collected(project: Path) -> None:
    proc = _pytest(project, "--collect-only", "-q", "ui-tests/greet.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _collected(proc) == ["ui-tests/greet.yaml::greet"]


def test_a_folder_outside_the_glob_collects_nothing_and_says_why(project: Path) -> None:
    proc = _pytest(project, "--collect-only", "-q", "ui-tests")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "scenario-like YAML file(s) not collected" in proc.stdout
    assert "guiagent_scenarios" in proc.stdout


def test_the_glob_is_configurable(project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\nguiagent_scenarios =\n    ui-tests/*.yaml\n")
    proc = _pytest(project, "--collect-only", "-q", "ui-tests/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _collected(proc) == ["ui-tests/greet.yaml::greet"]  # not the skill beneath it


def test_skills_beside_the_scenario_in_the_project_root_and_by_option(
    project: Path, tmp_path: Path
) -> None:
    scenario_path = project / "ui-tests" / "greet.yaml"
    root_skills, nearer = skill_dirs(scenario_path)
    assert root_skills == project.resolve() / "skills"
    assert nearer == [project.resolve() / "ui-tests" / "skills"]
    scenario = load_scenario(scenario_path)
    names = set(scenario_skills(scenario).skills)
    assert {"greet_near", "greet_root", "login"} <= names  # login: a built-in
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "greet_extra.yaml").write_text(SKILL.format(name="greet_extra"))
    assert "greet_extra" in scenario_skills(scenario, [extra]).skills


@pytest.mark.browser
def test_scenario_run_finds_skills_from_any_working_directory(
    project: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    (project / "ui-tests" / "root.yaml").write_text(
        SCENARIO.format(name="root", skill="greet_root")
    )
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "greet_extra.yaml").write_text(SKILL.format(name="greet_extra"))
    (project / "ui-tests" / "extra.yaml").write_text(
        SCENARIO.format(name="extra", skill="greet_extra")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["scenario", "run", str(project / "ui-tests"), "--record", str(tmp_path / "recs")]
    assert main(argv) == 1  # greet_extra is unknown without --skills
    assert "unknown skill 'greet_extra'" in capsys.readouterr().out
    assert main([*argv, "--skills", str(extra)]) == 0, capsys.readouterr().out
    assert main([*argv, "--skills", str(tmp_path / "missing")]) == 2
