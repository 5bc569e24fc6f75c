"""The scenario runner on real surfaces: headless Chromium, Xvfb windows, the local grounder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guiagent.record.trajectory import StepRecord, load
from guiagent.scenario.runner import ScenarioResult, match_pattern
from guiagent.scenario.schema import load_scenario, scenario_from_data
from guiagent.scenario.session import ScenarioSession, SessionOptions

REPO = Path(__file__).resolve().parents[1]

TOAST_PAGE = """<!DOCTYPE html><html><head><title>toast page</title>
<style>body{font:24px sans-serif;margin:20px} #toast{color:#fff;background:#333;padding:8px}</style>
</head><body>
<button id="save" onclick="flash()">Save</button>
<p id="toast" hidden>Saved!</p>
<script>
function flash(){var t=document.getElementById('toast');t.hidden=false;
  setTimeout(function(){t.hidden=true;}, 350);}
</script></body></html>"""


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.models.local import LocalGrounder

    return LocalGrounder()


def run(
    async_runner: Any,
    browser: Any,
    grounder: Any,
    scenario: Any,
    tmp_path: Path,
    **options: Any,
) -> ScenarioResult:
    async def go() -> ScenarioResult:
        session = ScenarioSession(
            SessionOptions(record_dir=tmp_path / "runs", **options),
            browser=browser,
            grounder=grounder,
        )
        async with session:
            return await session.run(scenario)

    return async_runner.run(go(), timeout=240)


@pytest.mark.browser
@pytest.mark.parametrize("name", ["login_success", "todos"])
def test_shipped_web_scenarios_pass_and_are_recorded(
    name: str, async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    scenario = load_scenario(REPO / "scenarios" / "web" / f"{name}.yaml")
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.ok, result.failure_message()
    assert [s.status for s in result.steps] == ["passed"] * len(scenario.steps)
    recording = load(result.run_dir)
    assert recording.header.status == "finished"
    assert len(recording.steps) == len(scenario.steps)
    clicks = [s for s in recording.steps if s.action_name == "click"]
    assert clicks, "a scenario with clicks records them"
    for step in clicks:  # screen coordinates inside the 1280x800 viewport, from a grounded box
        x, y = step.screen_point()
        assert 0 <= x < 1280 and 0 <= y < 800
        assert step.trail[0]["source"] in ("dom", "ocr", "dom+field", "ocr+field")
        assert step.frame and recording.frame_image(step) is not None


@pytest.mark.browser
def test_a_recorded_scenario_run_replays_strictly_on_a_fresh_page(
    async_runner: Any,
    playwright_browser: Any,
    static_server: Any,
    grounder: Any,
    tmp_path: Path,
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.record.replay import replay
    from guiagent.record.verify import verify_run

    scenario = load_scenario(REPO / "scenarios" / "web" / "login_success.yaml")
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.ok, result.failure_message()
    recording = load(result.run_dir)
    assert verify_run(recording) == []

    # Each input event is its own step: "type into" is the click that focused the field
    # (at the field, with evidence), then the typing.
    typed = [s for s in recording.steps if s.model_extra["scenario_step"]["kind"] == "type"]
    assert len(typed) == 2
    for step, text in zip(typed, ["alice", "secret"], strict=True):
        assert step.screen_action == {"action": "type", "text": text}
        click, typing = (StepRecord.model_validate(sub) for sub in step.sub_steps)
        assert click.screen_action is not None and click.screen_action["action"] == "click"
        assert typing.screen_action == {"action": "type", "text": text}
        trail = click.trail[0]
        assert trail["space"] == "image" and trail["frame"] == trail["model"] == trail["sent"]
        assert trail["screen"] == [click.screen_action["x"], click.screen_action["y"]]
        assert click.meta["transform"] == {"origin": [0.0, 0.0], "scale": 1.0}
        assert click.meta["url"].endswith("/guiagent/demo/webapp/index.html")
        assert click.evidence is not None and click.evidence["dom"]["tag"] == "input"
        assert click.evidence["dom"]["id"] == ("username" if text == "alice" else "password")
        assert recording.file(click.evidence["crop"]).is_file()
        assert click.outcome == typing.outcome == "ok" and "act_ms" in click.timings
    (sign_in,) = [s for s in recording.steps if s.action_name == "click"]
    assert not sign_in.sub_steps and sign_in.evidence and sign_in.evidence["dom"]["tag"] == "button"

    async def go() -> tuple[Any, Any]:
        url = static_server.url_for("guiagent/demo/webapp/index.html")
        async with BrowserEnv(start_url=url, browser=playwright_browser) as env:
            report = await replay(
                recording, env, mode="strict", speed=0, out_dir=tmp_path / "replay"
            )
            return report, await env.page.evaluate("window.demoState.user")

    report, user = async_runner.run(go(), timeout=120)
    assert report.ok, report.summary()
    ran = [s for s in report.steps if s.status == "ok"]
    assert [s.action["action"] for s in ran if s.action] == [
        "click",
        "type",
        "click",
        "type",
        "click",
    ]
    pointed = [s for s in ran if s.point]
    assert len(pointed) == 3  # every click was checked against its recorded crop first
    assert all(s.score is not None and s.score <= s.threshold for s in pointed)
    assert user == "alice"


@pytest.mark.browser
def test_broken_scenario_names_step_expectation_and_what_was_seen(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    scenario = load_scenario(REPO / "tests" / "data" / "broken_scenario.yaml")
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.status == "failed"
    assert [s.status for s in result.steps] == ["passed", "passed", "failed", "skipped"]
    message = result.failure_message()
    assert message.startswith(
        'step 3 (click "Sign on" (role=button)): no text matching "Sign on"; seen: '
    )
    assert '"Sign in" (0.86)' in message
    failed = result.failed_step
    assert failed is not None and failed.frame_path and Path(failed.frame_path).is_file()
    recording = load(result.run_dir)
    assert recording.header.status == "failed"
    assert recording.steps[-1].outcome == "failed" and "Sign on" in (
        recording.steps[-1].error or ""
    )


@pytest.mark.browser
def test_expect_sees_a_toast_that_is_gone_from_the_settled_frame(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    (tmp_path / "toast.html").write_text(TOAST_PAGE)
    data = {
        "target": {"url": "toast.html"},
        "viewport": [360, 160],
        "settle": {"quiet_ms": 500, "timeout_s": 4},
        "steps": [
            {"click": "Save"},
            {"expect": {"text": "Saved!", "timeout": 0}},
            {"expect": {"text": "Saved!", "not": True}},  # the settled page no longer shows it
        ],
    }
    scenario = scenario_from_data(data, str(tmp_path / "toast.yaml"))
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.ok, result.failure_message()


@pytest.mark.browser
def test_model_steps_skills_waits_and_page_checks_fail_clearly(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    (tmp_path / "toast.html").write_text(TOAST_PAGE)
    base = {"target": {"url": "toast.html"}, "viewport": [360, 160]}

    def failure(steps: list[dict[str, Any]]) -> str:
        scenario = scenario_from_data({**base, "steps": steps}, str(tmp_path / "s.yaml"))
        result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
        assert result.status == "failed"
        return result.failure_message()

    msg = failure([{"expect": {"title": "toast*"}}, {"ai": "open the menu"}])
    assert msg.startswith("step 2 (ai): needs a model server: pass --model URL")
    msg = failure([{"ai_assert": "Is there a Save button?"}])
    assert msg.startswith("step 1 (ai_assert): needs a model server: pass --model URL")
    msg = failure([{"use": {"skill": "no_such_skill", "with": {"a": 1}}}])
    assert msg.startswith("step 1 (use no_such_skill): unknown skill 'no_such_skill'")
    msg = failure([{"expect": {"url": "*/other.html"}}])
    assert msg.startswith(
        "step 1 (expect url '*/other.html'): url is not '*/other.html'; seen: 'http://127.0.0.1:"
    )
    msg = failure([{"expect": {"title": "re:^Login$"}}])
    assert "title is not 're:^Login$'; seen: 'toast page'" in msg
    msg = failure([{"wait_for": {"text": "Save", "gone": True, "timeout": 0.3}}])
    assert msg.startswith('step 1 (wait_for "Save" gone): "Save" still visible after 0.3 s')


def test_match_pattern_glob_regex_and_substring() -> None:
    assert match_pattern("*/index.html", "http://h/x/index.html")
    assert not match_pattern("*/index.html", "http://h/x/index.htm")
    assert match_pattern("re:^http://h/\\w+/", "http://h/x/index.html")
    assert match_pattern("demo", "guiagent demo")


@pytest.mark.desktop
@pytest.mark.browser
def test_cli_runs_desktop_and_browser_scenarios_with_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XAUTHORITY")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "guiagent.cli",
            "scenario",
            "run",
            "scenarios/desktop/tk_greet.yaml",
            "scenarios/web/login_failure.yaml",
            "--workers",
            "2",
            "--record",
            str(tmp_path / "runs"),
            "--json",
            str(out),
            "--var",
            "person=Grace",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed, 0 failed" in proc.stdout
    assert '✓ step 4 (expect "Hello, Grace!")' in proc.stdout
    results = json.loads(out.read_text())
    assert {r["name"]: r["status"] for r in results} == {
        "tk greet": "passed",
        "login failure": "passed",
    }
    for r in results:
        assert (Path(r["run_dir"]) / "steps.jsonl").is_file()
        assert str(tmp_path / "runs") in proc.stdout


def test_cli_reports_invalid_files_and_bad_options(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: {url: a.html}\nsteps:\n  - click: [1, 2]\n")
    cmd = [sys.executable, "-m", "guiagent.cli", "scenario"]
    proc = subprocess.run([*cmd, "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad.yaml:3: step 1 (click): expected a text or a mapping" in proc.stdout.replace(
        "\n", ""
    )
    proc = subprocess.run(
        [*cmd, "run", str(bad), "--var", "novalue"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--var expects NAME=VALUE" in proc.stdout
    proc = subprocess.run(
        [*cmd, "check", "scenarios"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "xcalc_sum.yaml" in proc.stdout


@pytest.mark.desktop
def test_a_program_that_dies_before_its_window_is_a_setup_error(
    async_runner: Any, x_display: Any, tmp_path: Path
) -> None:
    data = {
        "target": {"command": ["sh", "-c", "echo no luck >&2; exit 3"], "window": "Never"},
        "steps": [{"press": "a"}],
    }
    scenario = scenario_from_data(data, str(tmp_path / "dies.yaml"))
    result = run(async_runner, None, None, scenario, tmp_path, display=x_display.display)
    assert result.status == "error"
    assert (
        result.error is not None
        and "exited with code 3 before its window appeared: no luck" in result.error
    )
    assert [s.status for s in result.steps] == ["skipped"]
    assert load(result.run_dir).header.status == "failed"
