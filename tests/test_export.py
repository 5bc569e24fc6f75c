"""Exports that reproduce a run: an agent run that typed a password and a scenario run with
into/near/expect/wait_for, exported as a scenario and as a Playwright script, each run again
on a fresh page and checked by the page's own state."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from guiagent.cli import main as cli_main
from guiagent.envs.browser import BrowserEnv, chromium_executable
from guiagent.record import load
from guiagent.record.export import ExportError, export_playwright, export_scenario
from guiagent.scenario.runner import run_scenario
from guiagent.scenario.schema import load_scenario
from guiagent.scenario.session import ScenarioSession, SessionOptions

REPO = Path(__file__).resolve().parents[1]
WEBAPP = "guiagent/demo/webapp/index.html"
SECRET_ENV = {"GUIAGENT_SECRET_PASSWORD": "secret", "GUIAGENT_SECRET_PW": "secret"}


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def _run_exported_scenario(
    async_runner: Any, browser: Any, grounder: Any, path: Path, url: str
) -> tuple[Any, Any]:
    scenario = load_scenario(path, environ={**os.environ, **SECRET_ENV})

    async def go() -> tuple[Any, Any]:
        async with BrowserEnv(start_url=url, browser=browser) as env:
            result = await run_scenario(scenario, env, grounder)
            return result, await env.page.evaluate("window.demoState.user")

    return async_runner.run(go(), timeout=240)


def _run_exported_script(script: Path, url: str) -> str:
    """Run the script's ``run(page)`` in a fresh Chromium; the page's signed-in user."""
    driver = textwrap.dedent(
        f"""
        import os, runpy
        from playwright.sync_api import sync_playwright
        ns = runpy.run_path({str(script)!r})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"])
            page = browser.new_page(viewport=ns["VIEWPORT"])
            page.goto(os.environ["START_URL"])
            ns["run"](page)
            print("USER=" + str(page.evaluate("window.demoState.user")))
            browser.close()
        """
    )
    env = {**os.environ, **SECRET_ENV, "START_URL": url, "CHROMIUM": chromium_executable() or ""}
    done = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1].removeprefix("USER=")


@pytest.mark.browser
def test_an_agent_run_with_a_password_exports_and_runs_again(
    async_runner: Any, playwright_browser: Any, grounder: Any, static_server: Any, tmp_path: Path
) -> None:
    run = load(REPO / "recordings" / "browser_login")  # the agent loop signed in; password redacted
    path = export_scenario(run, tmp_path / "login.yaml")
    data = yaml.safe_load(path.read_text())
    steps = yaml.safe_dump(data["steps"])  # (the task's own wording, in the name, was redacted)
    assert "[REDACTED]" not in steps and "${secret:password}" in steps
    assert data["steps"][:2] == [
        {"type": {"text": "alice", "into": "Username"}},
        {"type": {"text": "${secret:password}", "into": "Password"}},
    ]
    assert "GUIAGENT_SECRET_PASSWORD" in data["description"]
    url = static_server.url_for(WEBAPP)
    result, user = _run_exported_scenario(async_runner, playwright_browser, grounder, path, url)
    assert result.ok, result.failure_message()
    assert user == "alice"

    script = export_playwright(run, tmp_path / "login.py")
    code = script.read_text()
    body = code.split("def run(", 1)[1]
    assert "[REDACTED]" not in body and "os.environ['GUIAGENT_SECRET_PASSWORD']" in body
    assert "page.get_by_role('textbox', name='Username', exact=True).click()" in code
    assert "page.get_by_role('button', name='Sign in', exact=True).click()" in code
    assert _run_exported_script(script, url) == "alice"


CHECKED_LOGIN = """
name: checked login
target: {{url: "{url}"}}
variables: {{user: alice}}
steps:
  - expect: Sign in
  - type: {{text: "${{user}}", into: Username}}
  - type: {{text: "${{secret:pw}}", into: Password}}
  - click: {{text: Sign in, role: button, near: Password}}
  - wait_for: {{text: "Welcome, ${{user}}", timeout: 5}}
  - expect: {{title: guiagent demo}}
"""


@pytest.mark.browser
def test_a_scenario_run_exports_with_into_near_expect_and_waits(
    async_runner: Any, playwright_browser: Any, grounder: Any, static_server: Any, tmp_path: Path
) -> None:
    url = static_server.url_for(WEBAPP)
    source = tmp_path / "checked.yaml"
    source.write_text(CHECKED_LOGIN.format(url=url))
    scenario = load_scenario(source, environ={**os.environ, **SECRET_ENV})

    async def record() -> Any:
        session = ScenarioSession(
            SessionOptions(record_dir=tmp_path / "runs"),
            browser=playwright_browser,
            grounder=grounder,
        )
        async with session:
            return await session.run(scenario)

    recorded = async_runner.run(record(), timeout=240)
    assert recorded.ok, recorded.failure_message()
    run = load(recorded.run_dir)
    path = export_scenario(run, tmp_path / "exported.yaml")
    text = path.read_text()
    assert "[REDACTED]" not in text and "secret" not in text.replace("${secret:pw}", "")
    data = yaml.safe_load(text)
    assert data["target"] == {"url": url} and data["variables"] == {"user": "alice"}
    assert [next(iter(s)) for s in data["steps"]] == [
        "expect",
        "type",
        "type",
        "click",
        "wait_for",
        "expect",
    ]
    assert data["steps"][1]["type"] == {"text": "${user}", "into": "Username"}
    assert data["steps"][2]["type"]["text"] == "${secret:pw}"
    assert data["steps"][3]["click"]["near"] == "Password"
    assert data["steps"][0] == {"expect": "Sign in"}
    assert data["steps"][4]["wait_for"] == {"text": "Welcome, ${user}", "timeout": 5}
    assert data["steps"][5]["expect"]["title"] == "guiagent demo"
    result, user = _run_exported_scenario(async_runner, playwright_browser, grounder, path, url)
    assert result.ok, result.failure_message()
    assert user == "alice"

    script = export_playwright(run, tmp_path / "exported.py")
    code = script.read_text()
    assert "expect(page.get_by_text('Welcome, alice').first)" not in code  # a wait, not an expect
    assert (
        "page.get_by_text('Welcome, alice').first.wait_for(state='visible', timeout=5000)" in code
    )
    assert "os.environ['GUIAGENT_SECRET_PW']" in code
    assert _run_exported_script(script, url) == "alice"


def test_desktop_runs_export_with_their_window_and_cli_writes_a_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load(REPO / "recordings" / "tk_greet")
    data = yaml.safe_load(export_scenario(run, tmp_path / "tk.yaml").read_text())
    assert data["env"] == "desktop" and data["target"] == {"window": "guiagent demo"}
    assert {"type": {"text": "Ada"}} in data["steps"] or any(
        "type" in s and s["type"]["text"] == "Ada" for s in data["steps"]
    )
    load_scenario(tmp_path / "tk.yaml")  # valid against the schema
    with pytest.raises(ExportError, match="needs a browser run"):
        export_playwright(run, tmp_path / "tk.py")
    out = tmp_path / "login.py"
    assert (
        cli_main(["export", str(REPO / "recordings" / "browser_login"), "--playwright", str(out)])
        == 0
    )
    assert f"written {out}" in capsys.readouterr().out
    compile(out.read_text(), str(out), "exec")
