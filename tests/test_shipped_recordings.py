"""The recordings shipped in recordings/ (made by scripts/make_recordings.py): they load, verify,
render as reports, and the browser one replays strictly against the demo app served anew
(on another port than the one it was recorded on)."""

from __future__ import annotations

import json
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
    size = sum(f.stat().st_size for f in RECORDINGS.rglob("*") if f.is_file())
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
