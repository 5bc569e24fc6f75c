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
from guiagent.scenario.schema import ScenarioError, load_scenario, scenario_from_data
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
    from guiagent.grounding.local import LocalGrounder

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
    # (at the field, with evidence), then the typing. The password is not recorded.
    typed = [s for s in recording.steps if s.model_extra["scenario_step"]["kind"] == "type"]
    assert len(typed) == 2
    for step, text in zip(typed, ["alice", "[REDACTED]"], strict=True):
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
            report = await replay(  # the redacted password comes from the user, by step
                recording,
                env,
                mode="strict",
                variables={f"step{typed[1].index}": "secret"},
                speed=0,
                out_dir=tmp_path / "replay",
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


LOGIN_STEPS: list[dict[str, Any]] = [
    {"expect": "Sign in"},
    {"type": {"text": "alice", "into": "Username"}},
    {"type": {"text": "${password}", "into": "Password"}},
    {"click": {"text": "Sign in", "role": "button"}},
    {"expect": "Welcome, alice"},
    {"screenshot": "after-login"},
]


def _login_scenario(tmp_path: Path, password: str, name: str, **options: Any) -> Any:
    data = {
        "name": name,
        "target": {"url": "guiagent/demo/webapp/index.html"},
        "variables": {"password": password},
        "steps": LOGIN_STEPS,
    }
    # the demo app's URL is relative to the repository root
    return scenario_from_data(data, str(REPO / "scenarios" / "web" / f"{name}.yaml"), **options)


def _run_dir_bytes(run_dir: str) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(run_dir).rglob("*")) if p.is_file())


def _assert_password_box_black(recording: Any) -> int:
    """Every saved frame that shows the login form has the password field blacked out."""
    checked = 0
    records = [StepRecord.model_validate(sub) for s in recording.steps for sub in s.sub_steps]
    for step in [*recording.steps, *records]:
        fields = [r for r in step.redactions if r["kind"] == "password_field"]
        if not step.frame or not fields:
            continue
        image = recording.frame_image(step).convert("RGB")
        (note,) = fields
        x, y, w, h = note["box"]
        assert w > 100 and 20 < h < 80  # the input's box, padded
        for fx in (0.1, 0.3, 0.5, 0.7, 0.9):
            for fy in (0.25, 0.5, 0.75):
                assert image.getpixel((int(x + w * fx), int(y + h * fy))) == (0, 0, 0)
        checked += 1
    return checked


@pytest.mark.browser
def test_a_password_typed_literally_is_typed_but_recorded_redacted_and_blacked_out(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    scenario = _login_scenario(tmp_path, "secret", "literal-login")
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.ok, result.failure_message()  # "Welcome, alice": the real password was typed
    assert result.steps[2].label == 'step 3 (type "[REDACTED]" into "Password")'
    assert result.steps[1].label == 'step 2 (type "alice" into "Username")'

    recording = load(result.run_dir)
    typing = recording.steps[2]
    assert typing.screen_action == {"action": "type", "text": "[REDACTED]"}
    sub_texts = [sub["screen_action"] for sub in typing.sub_steps]
    assert sub_texts[1] == {"action": "type", "text": "[REDACTED]"}
    spec = typing.model_extra["scenario_step"]
    assert spec["label"] == result.steps[2].label and spec["spec"]["type"]["text"] == "[REDACTED]"
    assert recording.header.settings["variables"] == {"password": "[REDACTED]"}
    # the username is not a secret: still recorded as typed
    assert recording.steps[1].screen_action == {"action": "type", "text": "alice"}
    # the word appears as no recorded value (JSON strings, in any file of the run)
    raw = _run_dir_bytes(result.run_dir)
    assert b'secret"' not in raw.replace(b'"secret":', b"")  # only the key of "variables"
    # frames before and after typing show the field black; the screenshot step too
    assert _assert_password_box_black(recording) >= 3
    shot = Path(result.run_dir) / "after-login.png"
    assert shot.is_file()


@pytest.mark.browser
def test_a_stored_reference_is_typed_from_the_store_and_redacted_everywhere(
    async_runner: Any,
    playwright_browser: Any,
    grounder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from guiagent.commands.scenario import _print_result
    from guiagent.scenario.pytest_plugin import _step_lines

    # the demo app accepts only "secret": a unique marker around it finds every leak
    monkeypatch.setenv("GUIAGENT_SECRET_DEMO_PASSWORD", "secret")
    scenario = _login_scenario(tmp_path, "${secret:demo_password}", "vault-login")
    assert scenario.secrets == {"demo_password": "secret"}
    result = run(async_runner, playwright_browser, grounder, scenario, tmp_path)
    assert result.ok, result.failure_message()
    recording = load(result.run_dir)
    typing = StepRecord.model_validate(recording.steps[2].sub_steps[1])
    assert typing.screen_action == {"action": "type", "text": "[REDACTED]"}
    # a replay asks for the secret by name; export writes the reference back
    assert typing.variables == {"name": "secret:demo_password", "secret": True, "value_hash": None}
    assert recording.steps[2].variables["name"] == "secret:demo_password"
    raw = _run_dir_bytes(result.run_dir)
    assert b'secret"' not in raw.replace(b'"secret":', b"")  # only the key of "variables"
    assert _assert_password_box_black(recording) >= 3

    # a failing run: the message, the report and the pytest plugin's text stay clean
    failing = scenario_from_data(
        {
            "target": {"url": "guiagent/demo/webapp/index.html"},
            "steps": [{"click": "${secret:unique}"}],
            "step_timeout": 0.3,
        },
        str(REPO / "scenarios" / "web" / "failing-vault.yaml"),
        secrets={"unique": "zq-unique-marker-7731"},
    )
    bad = run(async_runner, playwright_browser, grounder, failing, tmp_path)
    assert bad.status == "failed"
    message = bad.failure_message()
    assert message.startswith('step 1 (click "[REDACTED]"): no text matching "[REDACTED]"')
    from rich.console import Console

    from guiagent.commands import scenario as scenario_command

    console = Console(record=True, width=200)
    monkeypatch.setattr(scenario_command, "console", console)
    _print_result(bad)
    printed = console.export_text() + "\n".join(_step_lines(bad))
    assert "[REDACTED]" in printed and "zq-unique-marker-7731" not in printed
    raw = _run_dir_bytes(bad.run_dir)
    assert b"zq-unique-marker-7731" not in raw and b"[REDACTED]" in raw


def test_secret_references_resolve_from_given_values_env_and_file(tmp_path: Path) -> None:
    base = {"target": {"url": "x.html"}, "steps": [{"type": "${secret:api key}"}]}
    given = scenario_from_data(base, secrets={"api key": "v1"}, environ={})
    assert given.steps[0].value.text == "v1" and given.secrets == {"api key": "v1"}
    env = scenario_from_data(base, environ={"GUIAGENT_SECRET_API_KEY": "v2"})
    assert env.steps[0].value.text == "v2"
    (tmp_path / "s.yaml").write_text("api key: v3\n")
    filed = scenario_from_data(base, environ={"GUIAGENT_SECRETS_FILE": str(tmp_path / "s.yaml")})
    assert filed.secrets == {"api key": "v3"}
    with pytest.raises(ScenarioError) as info:
        scenario_from_data(base, environ={})
    assert "GUIAGENT_SECRET_API_KEY" in str(info.value) and "step 1 (type)" in str(info.value)
    plain = scenario_from_data({**base, "steps": [{"type": "x"}]}, environ={})
    assert plain.secrets == {}


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
