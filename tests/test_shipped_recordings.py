"""The recordings shipped in recordings/ (made by scripts/make_recordings.py): they load, verify,
render as reports, and the browser one replays strictly against the demo app served anew
(on another port than the one it was recorded on)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from guiagent.cli import main as cli_main
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.record.replay import rebase_url, replay
from guiagent.record.report import write_report

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
NAMES = ["browser_login", "tk_greet", "scenario_login"]
WEBAPP = "guiagent/demo/webapp/index.html"


def test_the_folder_is_small_and_complete() -> None:
    assert {p.name for p in RECORDINGS.iterdir() if p.is_dir()} >= set(NAMES)
    # recordings/runs/ holds local runs (the demo writes there; git ignores it): not shipped
    shipped = [RECORDINGS / "README.md", *(RECORDINGS / name for name in NAMES)]
    size = sum(f.stat().st_size for p in shipped for f in [p, *p.rglob("*")] if f.is_file())
    assert size < 2 * 1024 * 1024, f"recordings/ is {size / 1024:.0f} KiB"
    assert (RECORDINGS / "README.md").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_shipped_recording_verifies_and_reports(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load(RECORDINGS / name, strict=True)
    assert run.header.status == "finished" and run.steps
    assert cli_main(["replay", str(RECORDINGS / name), "--mode", "verify"]) == 0
    assert "verify replay of" in capsys.readouterr().out
    out = write_report(run, tmp_path / "report.html")
    html = out.read_text()
    assert run.header.run_id in html and html.count("<img") >= len(run.steps)
    thumbnails = list((tmp_path / "report_files").iterdir())
    assert thumbnails and all(p.stat().st_size > 0 for p in thumbnails)


def test_shipped_recordings_cover_browser_desktop_and_scenario() -> None:
    surfaces = {name: load(RECORDINGS / name).header.surface for name in NAMES}
    assert surfaces == {
        "browser_login": "browser",
        "tk_greet": "desktop",
        "scenario_login": "browser",
    }
    tk = load(RECORDINGS / "tk_greet")
    assert [s.action_name for s in tk.steps] == ["click", "type", "click", "finish"]
    assert tk.steps[1].screen_action == {"action": "type", "text": "Ada"}
    scenario = load(RECORDINGS / "scenario_login")
    assert [s.model_extra["scenario_step"]["kind"] for s in scenario.steps][:4] == [
        "expect",
        "type",
        "type",
        "click",
    ]


def _replay_login(
    async_runner: Any, browser: Any, url: str, out: Path, **kwargs: Any
) -> tuple[Any, str]:
    async def go() -> tuple[Any, str]:
        async with BrowserEnv(start_url=url, browser=browser) as env:
            report = await replay(
                load(RECORDINGS / "browser_login"), env, speed=0, out_dir=out, **kwargs
            )
            welcome = await env.page.locator("#welcome").text_content()
            return report, welcome or ""

    return async_runner.run(go())


@pytest.mark.browser
def test_browser_login_replays_strictly_on_a_new_server(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Path
) -> None:
    run = load(RECORDINGS / "browser_login")
    recorded_url = run.steps[0].meta["url"]
    url = rebase_url(recorded_url, static_server.url)
    assert url == static_server.url_for(WEBAPP) and url != recorded_url  # another port
    # the password was redacted by the recorder: the replay needs its value
    assert run.steps[3].screen_action == {"action": "type", "text": "[REDACTED]"}
    # it is not typed blindly: the replay stops there and says what to give
    report, welcome = _replay_login(async_runner, playwright_browser, url, tmp_path / "a")
    assert not report.ok and [s.status for s in report.steps] == ["ok", "ok", "ok", "failed"]
    assert report.failure == (
        "step 4 types text that was redacted when it was recorded ('[REDACTED]'):"
        " give the value with --var step4=VALUE"
    )
    assert welcome == ""
    report, welcome = _replay_login(
        async_runner,
        playwright_browser,
        url,
        tmp_path / "b",
        mode="strict",
        variables={"step4": "secret"},
    )
    assert report.ok, report.summary()
    assert [s.status for s in report.steps] == ["ok"] * 5 + ["ended"]
    assert all(s.score is not None and s.score <= s.threshold for s in report.steps if s.point)
    assert "alice" in welcome


@pytest.mark.browser
def test_cli_replays_the_browser_recording_with_a_base_url(
    static_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        [
            "replay",
            str(RECORDINGS / "browser_login"),
            "--base-url",
            static_server.url,
            "--var",
            "step4=secret",
            "--speed",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASSED" in out
    saved = json.loads((tmp_path / "replay.json").read_text())
    assert saved["ok"] is True and len(saved["steps"]) == 6


FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <match target="pattern">
    <test name="family"><string>DejaVu Sans</string></test>
    <edit name="family" mode="assign" binding="strong"><string>{font}</string></edit>
  </match>
  <match target="pattern">
    <test name="family"><string>sans-serif</string></test>
    <edit name="family" mode="prepend" binding="strong"><string>{font}</string></edit>
  </match>
</fontconfig>
"""
# another sans-serif (fonts-liberation2, installed by scripts/setup.sh); a serif else
OTHER_FONT = (
    "Liberation Sans"
    if shutil.which("fc-list")
    and "Liberation Sans"
    in subprocess.run(
        ["fc-list", ":", "family"], capture_output=True, text=True, check=False
    ).stdout
    else "DejaVu Serif"
)
TEXT_WIDTH_JS = """() => { const c = document.createElement('canvas').getContext('2d');
  c.font = '20px "DejaVu Sans"'; return c.measureText('Sign in as alice').width; }"""


@pytest.fixture(scope="module")
def other_font_browser(async_runner: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Chromium whose "DejaVu Sans" and default sans-serif are another font (fontconfig)."""
    from playwright.async_api import async_playwright

    from guiagent.envs.browser import CHROMIUM_ARGS, chromium_executable
    from guiagent.testing.fixtures import PINNED_RENDERING_ARGS

    conf = tmp_path_factory.mktemp("fonts") / "fonts.conf"
    conf.write_text(FONTS_CONF.format(font=OTHER_FONT))

    async def launch() -> tuple[Any, Any]:
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(
            headless=True,
            executable_path=chromium_executable(),
            args=[*CHROMIUM_ARGS, *PINNED_RENDERING_ARGS],
            env={**os.environ, "FONTCONFIG_FILE": str(conf)},
        )
        return pw, browser

    pw, browser = async_runner.run(launch())
    yield browser

    async def stop() -> None:
        await browser.close()
        await pw.stop()

    async_runner.run(stop())


def _replay_shipped(
    async_runner: Any, browser: Any, name: str, url: str, out: Path, dpr: float = 1.0, **kw: Any
) -> tuple[Any, str, float]:
    async def go() -> tuple[Any, str, float]:
        async with BrowserEnv(start_url=url, browser=browser, device_scale_factor=dpr) as env:
            width = await env.page.evaluate(TEXT_WIDTH_JS)
            report = await replay(load(RECORDINGS / name), env, speed=0, out_dir=out, **kw)
            welcome = await env.page.locator("#welcome").text_content()
            return report, welcome or "", float(width)

    return async_runner.run(go())


def _secret_var(name: str) -> dict[str, str]:
    run = load(RECORDINGS / name)
    from guiagent.record.replay import flatten

    redacted = [
        s for s in flatten(run.steps) if "[REDACTED]" in str((s.screen_action or {}).get("text"))
    ]
    names = [str(s.variables.get("name", "")).removeprefix("secret:") for s in redacted]
    return {(n or f"step{s.index}"): "secret" for n, s in zip(names, redacted, strict=True)}


@pytest.mark.browser
@pytest.mark.parametrize("name", ["browser_login", "scenario_login"])
def test_shipped_recordings_replay_strictly_with_another_font(
    async_runner: Any,
    playwright_browser: Any,
    other_font_browser: Any,
    static_server: Any,
    tmp_path: Path,
    name: str,
) -> None:
    url = rebase_url(load(RECORDINGS / name).steps[0].meta["url"], static_server.url)
    variables = _secret_var(name)
    _, _, usual_width = _replay_shipped(
        async_runner, playwright_browser, name, url, tmp_path / "same", variables=variables
    )
    report, welcome, width = _replay_shipped(
        async_runner, other_font_browser, name, url, tmp_path / "other", variables=variables
    )
    assert abs(width - usual_width) > 2, "the font did not change"  # the glyphs differ...
    assert report.ok, report.summary()  # ...and the same elements are still found: strict passes
    assert "alice" in welcome
    pointed = [s for s in report.steps if s.point]
    assert pointed and all(s.method == "dom" for s in pointed)
    if name == "scenario_login":  # its expect steps were checked on the live page
        kinds = [s.model_extra["scenario_step"]["kind"] for s in load(RECORDINGS / name).steps]
        expects = [s.status for s in report.steps if s.method == "expect"]
        assert expects == ["ok"] * kinds.count("expect") and len(expects) >= 2


@pytest.mark.browser
def test_shipped_browser_recording_replays_strictly_at_another_device_pixel_ratio(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Path
) -> None:
    url = rebase_url(load(RECORDINGS / "browser_login").steps[0].meta["url"], static_server.url)
    report, welcome, _ = _replay_shipped(
        async_runner,
        playwright_browser,
        "browser_login",
        url,
        tmp_path,
        dpr=2.0,
        variables={"step4": "secret"},
    )
    assert report.ok, report.summary()
    assert "alice" in welcome


@pytest.mark.browser
def test_scenario_recording_takes_its_declared_variables(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Path
) -> None:
    run = load(RECORDINGS / "scenario_login")
    assert set(run.header.settings["variables"]) == {"user", "password"}
    url = rebase_url(run.steps[0].meta["url"], static_server.url)
    # the secret declared variable supplies the redacted typing; user replaces "alice"
    # in what is typed and in what is expected ("Welcome, ${user}")
    report, welcome, _ = _replay_shipped(
        async_runner,
        playwright_browser,
        "scenario_login",
        url,
        tmp_path / "bob",
        variables={"user": "bob", "password": "secret"},
    )
    assert report.ok, report.summary()
    assert welcome == "Welcome, bob"
    # a wrong password: the page does not welcome anyone, and the replayed expect says so
    report, welcome, _ = _replay_shipped(
        async_runner,
        playwright_browser,
        "scenario_login",
        url,
        tmp_path / "wrong",
        variables={"password": "nope"},
    )
    assert not report.ok and "Welcome, alice" in report.failure and "not visible" in report.failure
    with pytest.raises(Exception, match="unknown variable usr: this recording takes"):
        _replay_shipped(
            async_runner,
            playwright_browser,
            "scenario_login",
            url,
            tmp_path / "x",
            variables={"usr": "bob"},
        )


@pytest.mark.browser
def test_cli_replay_acts_through_the_step_executor_and_its_policy(
    static_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "default: allow\nrules:\n  - name: no-sign-in\n    decision: deny\n"
        "    reason: not today\n    when:\n      action: click\n      target_words: [Sign in]\n"
    )
    base = ["replay", str(RECORDINGS / "browser_login"), "--base-url", static_server.url]
    args = [*base, "--var", "step4=secret", "--speed", "0", "--out", str(tmp_path / "r")]
    assert cli_main([*args, "--policy", str(policy)]) == 1
    out = capsys.readouterr().out
    # the click on the Sign in button (its name read live from the DOM) was refused
    assert "step 5: click failed: denied by the policy: not today" in out
    assert json.loads((tmp_path / "r" / "replay.json").read_text())["ok"] is False


def test_cli_replay_names_a_bad_policy_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("rules:\n  - name: x\n    decision: maybe\n")
    code = cli_main(["replay", str(RECORDINGS / "tk_greet"), "--policy", str(policy)])
    out = capsys.readouterr().out
    assert code == 2 and "Traceback" not in out
    assert [line for line in out.splitlines() if line.startswith("error:")] == [
        f"error: {policy}:3: rule 'x': decision: Input should be 'allow', 'ask' or 'deny'"
    ]
