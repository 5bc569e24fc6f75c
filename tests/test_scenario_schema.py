"""Scenario files: validation errors with file/line/step, variables, JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guiagent.scenario.schema import (
    SCHEMA_PATH,
    ClickStep,
    DesktopTarget,
    ScenarioError,
    TargetSpec,
    find_scenarios,
    is_scenario_file,
    json_schema,
    load_scenario,
    scenario_from_data,
    write_json_schema,
)

REPO = Path(__file__).resolve().parents[1]

HEADER = "name: t\ntarget:\n  url: page.html\nsteps:\n"


def write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def error_of(path: Path, **kwargs: object) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_a_good_file_loads_with_step_kinds_lines_and_inferred_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "  - click: Sign in\n"
        + "  - type: {text: alice, into: {text: Username, role: textbox}}\n"
        + "  - press: ctrl+s\n"
        + "  - scroll: {on: Todos, direction: down, amount: 2}\n"
        + "  - drag: {from: A, to: {at: [10, 20]}}\n"
        + "  - wait_for: {text: Done, gone: true, timeout: 3}\n"
        + "  - expect: {text: Saved, not: true}\n"
        + "  - ai_assert: Is the list empty?\n"
        + "  - use: {skill: login, with: {user: bob}}\n"
        + "  - name: snap\n    screenshot: after\n",
    )
    scenario = load_scenario(path)
    assert scenario.env == "browser"
    assert [s.kind for s in scenario.steps] == [
        "click",
        "type",
        "press",
        "scroll",
        "drag",
        "wait_for",
        "expect",
        "ai_assert",
        "use",
        "screenshot",
    ]
    assert scenario.lines[0] == 5 and scenario.lines[9] == 14
    assert scenario.steps[0].value == TargetSpec(text="Sign in")
    assert scenario.steps[1].value.into.role == "textbox"
    assert scenario.steps[2].value == ["ctrl", "s"]
    assert scenario.steps[3].value.on.text == "Todos"  # `on:` stays a key, not YAML 1.1's True
    assert scenario.steps[4].value.to.at == (10.0, 20.0)
    assert scenario.steps[6].value.not_ is True
    assert scenario.steps[8].value.with_ == {"user": "bob"}
    assert scenario.steps[9].name == "snap"
    assert scenario.location(0) == f"{path}:5"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - click: Sign in\n  - click: [1, 2]\n",
            ":6: step 2 (click): expected a text or a mapping with text/image/at, got a list",
        ),
        ("  - clik: Sign in\n", ":5: step 1: unknown action 'clik'; expected one of click,"),
        (
            "  - click: {txt: hi}\n",
            ":5: step 1 (click): unknown key 'txt' in target (allowed: text, image, at, nth, near, in, role, exact)",
        ),
        (
            "  - click: {text: a, image: b.png}\n",
            ":5: step 1 (click): a target needs exactly one of text, image or at; got text, image",
        ),
        ("  - expect: {}\n", ":5: step 1 (expect): expect needs one of text, image, title or url"),
        (
            "  - click: a\n    type: b\n",
            ":5: step 1: a step has exactly one action, got 2: click, type",
        ),
        (
            "  - press: 5\n",
            ":5: step 1 (press): expected a key chord like 'ctrl+s' or ['ctrl', 's'], got a number",
        ),
        (
            "  - scroll: {direction: sideways}\n",
            ":5: step 1 (scroll): direction: Input should be 'up', 'down', 'left' or 'right'",
        ),
        (
            "  - click: x\n    timeout: -1\n",
            ":6: step 1 (click): timeout: Input should be greater than 0",
        ),
        (
            "  - click: x\n  - expect:\n      text: ok\n      colour: red\n",
            ":8: step 2 (expect): unknown key 'colour'",
        ),
        ("  - screenshot: a/b\n", ":5: step 1 (screenshot): String should match pattern"),
    ],
)
def test_bad_steps_name_file_line_and_step(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, HEADER + body)
    err = error_of(path)
    assert str(err).startswith(str(path)), str(err)
    assert expected in str(err), str(err)
    assert err.path == str(path)


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "  - click: [1]\n  - press: ctrl+s\n  - wait_for: 3\n")
    err = error_of(path)
    assert len(err.problems) == 2
    assert err.problems[0].endswith(
        ":5: step 1 (click): expected a text or a mapping with text/image/at, got a list"
    )
    assert err.problems[1].endswith(
        ":7: step 3 (wait_for): expected a text or a mapping with text/image, got a number"
    )


def test_top_level_errors(tmp_path: Path) -> None:
    assert "missing required key 'steps'" in str(
        error_of(write(tmp_path, "name: x\ntarget: {url: a.html}\n"))
    )
    err = error_of(
        write(tmp_path, "name: x\ntarget: {url: a.html}\nenv: desktop\nsteps:\n  - click: a\n")
    )
    assert ":1: env is 'desktop' but the target is a browser target" in str(
        err
    ) or "env is 'desktop'" in str(err)
    err = error_of(write(tmp_path, "name: x\ntarget: {url: a.html}\nsteps: []\n"))
    assert ":3: steps:" in str(err) and "at least 1 item" in str(err)
    err = error_of(write(tmp_path, "- just\n- a list\n"))
    assert ":1: a scenario is a mapping" in str(err)
    err = error_of(write(tmp_path, "name: x\nsteps: [click: a\n"))
    assert "not valid YAML" in str(err) and str(err).startswith(str(tmp_path / "s.yaml") + ":")
    assert "cannot read" in str(error_of(tmp_path / "missing.yaml"))


def test_desktop_target_and_viewport_shapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "target:\n  command: [xcalc]\n  window: Calculator\nviewport: 800x600\nsteps:\n  - press: '1'\n",
    )
    scenario = load_scenario(path)
    assert scenario.env == "desktop" and isinstance(scenario.target, DesktopTarget)
    assert scenario.viewport == (800, 600)
    assert scenario.name == "s"  # defaults to the file name
    err = error_of(write(tmp_path, "target: {cwd: x}\nsteps:\n  - press: a\n"))
    assert ":1: target:" in str(err)


def test_variables_overrides_environment_and_escapes(tmp_path: Path) -> None:
    body = (
        "name: greet ${who}\n"
        "target: {url: page.html}\n"
        "variables:\n"
        "  who: alice\n"
        "  home: ${env:GA_TEST_HOME}\n"
        "  fallback: ${env:GA_TEST_UNSET:-none}\n"
        "steps:\n"
        "  - type: {text: '${who} at ${home} ${fallback}', into: Name}\n"
        "  - expect: 'Costs $${price}'\n"
    )
    path = write(tmp_path, body)
    env = {"GA_TEST_HOME": "/home/a"}
    scenario = load_scenario(path, environ=env)
    assert scenario.name == "greet alice"
    assert scenario.steps[0].value.text == "alice at /home/a none"
    assert scenario.steps[1].value.text == "Costs ${price}"
    override = load_scenario(path, variables={"who": "bob"}, environ=env)
    assert override.steps[0].value.text.startswith("bob at")
    assert override.variables["who"] == "bob"


def test_unknown_variables_are_errors_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "  - click: a\n  - type: {text: '${pasword}'}\n")
    err = error_of(path)
    assert (
        str(err)
        == f"{path}:6: step 2 (type): text: unknown variable ${{pasword}} (variables: none defined)"
    )
    path = write(tmp_path, "target: {url: '${env:GA_NOPE_NOT_SET}'}\nsteps:\n  - click: a\n")
    err = error_of(path, environ={})
    assert "environment variable 'GA_NOPE_NOT_SET' is not set" in str(
        err
    ) and ":1: target.url:" in str(err)


def test_scenario_from_data_without_a_file() -> None:
    scenario = scenario_from_data({"target": {"url": "x.html"}, "steps": [{"click": "OK"}]})
    assert scenario.path is None and scenario.steps[0].value.text == "OK"
    assert isinstance(scenario.steps[0], ClickStep)


def test_committed_json_schema_is_the_generated_one(tmp_path: Path) -> None:
    fresh = write_json_schema(tmp_path / "schema.json")
    assert json.loads(SCHEMA_PATH.read_text()) == json.loads(fresh.read_text()), (
        "guiagent/scenario/scenario.schema.json is stale: run "
        "python3 -c 'from guiagent.scenario.schema import write_json_schema; write_json_schema()'"
    )
    schema = json_schema()
    assert "steps" in schema["required"]
    assert {"ClickStep", "TargetSpec", "ExpectSpec"} <= set(schema["$defs"])
    assert schema["$defs"]["ExpectSpec"]["properties"].keys() >= {"not", "text", "title", "url"}


def test_shipped_scenarios_are_valid_and_found() -> None:
    files = find_scenarios([REPO / "scenarios"])
    names = {f.name for f in files}
    assert {"login_success.yaml", "login_failure.yaml", "todos.yaml", "settings.yaml"} <= names
    assert {"tk_greet.yaml", "xcalc_sum.yaml"} <= names
    for path in files:
        assert load_scenario(path).steps
    assert not is_scenario_file(REPO / "pyproject.toml")
