"""A scenario attached to a running browser: `target: {cdp: URL}` and
`guiagent scenario run --browser-cdp URL`. The browser is ours (started with a DevTools
port); after the run its page is read over CDP: the steps acted on it, and it still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_env_browser import cdp_chromium  # noqa: F401  (the fixture: a Chromium with a DevTools port)

from guiagent.scenario.schema import ScenarioError, load_scenario
from guiagent.scenario.session import ScenarioSession, SessionOptions

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>attach</title>
<style>body{font:16px sans-serif;margin:24px}</style></head><body>
<p><label for="colour">Colour</label> <select id="colour">
<option>Red</option><option>Green</option><option>Blue</option></select></p>
<button onclick="document.getElementById('out').textContent='saved'">Save</button>
<p id="out">unsaved</p></body></html>"""

STEPS = """steps:
  - select: {option: Blue, in: Colour}
  - click: Save
  - expect: saved
"""


async def _page_state(cdp_url: str) -> list[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.connect_over_cdp(cdp_url)
        pages = [p for c in browser.contexts for p in c.pages]
        page = next(p for p in pages if p.url.endswith("page.html"))
        return list(
            await page.evaluate(
                "[document.getElementById('colour').value,"
                " document.getElementById('out').textContent]"
            )
        )


def test_a_scenario_target_attaches_over_cdp(
    async_runner: Any,
    cdp_chromium: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "page.html").write_text(PAGE, encoding="utf-8")
    file = tmp_path / "attach.yaml"
    url = (tmp_path / "page.html").as_uri()
    file.write_text(f"target: {{url: '{url}', cdp: '{cdp_chromium}'}}\n{STEPS}", "utf-8")
    scenario = load_scenario(file)

    async def go() -> Any:
        async with ScenarioSession(SessionOptions(record_dir=tmp_path / "runs")) as session:
            return await session.run(scenario)

    result = async_runner.run(go(), timeout=240)
    assert result.ok, result.failure_message()
    assert async_runner.run(_page_state(cdp_chromium)) == ["Blue", "saved"]


def test_scenario_run_with_browser_cdp_runs_in_that_browser(
    cdp_chromium: str,  # noqa: F811
    async_runner: Any,
    tmp_path: Path,
) -> None:
    (tmp_path / "page.html").write_text(PAGE, encoding="utf-8")
    file = tmp_path / "plain.yaml"
    file.write_text(f"target: {{url: '{(tmp_path / 'page.html').as_uri()}'}}\n{STEPS}", "utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "guiagent.cli",
            "scenario",
            "run",
            str(file),
            "--browser-cdp",
            cdp_chromium,
            "--record",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert async_runner.run(_page_state(cdp_chromium)) == ["Blue", "saved"]


def caught_message(file: Path) -> str:
    try:
        load_scenario(file)
    except ScenarioError as exc:
        return str(exc)
    return ""


def test_bad_attach_targets_are_clear_errors(tmp_path: Path) -> None:
    for target, message in [
        ("{cdp: 'http://h:1', ws: 'ws://h:2'}", "takes cdp or ws, not both"),
        ("{ws: 'ws://h:2'}", "needs a url"),
        ("{url: x.html, cdp: 'localhost:9222'}", "cdp must be a URL"),
    ]:
        file = tmp_path / "bad.yaml"
        file.write_text(f"target: {target}\nsteps:\n  - click: OK\n", "utf-8")
        with pytest.raises(ScenarioError, match=message):
            load_scenario(file)
        assert "unknown key" not in str(caught_message(file))
    file.write_text("target: {url: x.html}\nsteps:\n  - click: OK\n", "utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "guiagent.cli",
            "scenario",
            "run",
            str(file),
            "--browser-cdp",
            "localhost:9222",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--browser-cdp takes http://" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
