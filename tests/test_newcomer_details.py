"""Small things a newcomer met: step numbers from 1 with readable check steps in reports, the
recorded approval, the serve extra's name, no emoji in heal output."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.agent.policy import AutoApprover
from guiagent.cli import main
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.record.report import step_number, write_report
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

REPO = Path(__file__).resolve().parents[1]
PAGE = (
    "data:text/html,<body style='margin:0'><button style='position:absolute;left:100px;top:100px;"
    "width:200px;height:80px;font-size:30px'>Delete</button></body>"
)


def test_a_scenario_report_numbers_steps_from_1_and_names_its_checks(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(REPO / "recordings" / "scenario_login", run_dir)
    run = load(run_dir)
    assert run.steps[0].index == 0  # scenario recordings count from 0 ...
    assert [step_number(run, s) for s in run.steps] == list(range(1, len(run.steps) + 1))
    html = write_report(run).read_text()
    assert "<strong>step 1</strong>" in html and "<strong>step 0</strong>" not in html
    checks = [s for s in run.steps if not (s.action or s.screen_action)]
    assert checks, "the shipped scenario recording has expect steps"
    assert "(no action)" not in html
    label = checks[0].scenario_step["label"]  # e.g. step 5 (expect "Welcome, alice")
    shown = label.split("(", 1)[1].rsplit(")", 1)[0]
    assert shown.replace('"', "&#34;") in html or shown.replace('"', "&quot;") in html, shown


@pytest.mark.browser
def test_an_approved_step_is_recorded_as_asked(tmp_path):
    def respond(request: FakeRequest) -> FakeReply:
        if request.index == 0:
            return FakeReply(tool_calls=[("click", {"x": 200, "y": 140})])
        return FakeReply(tool_calls=[("finish", {"answer": "deleted"})])

    async def go():
        async with BrowserEnv(start_url=PAGE, viewport=(640, 400)) as env:
            with FakeModelServer(respond) as server:
                config = AgentConfig(model_url=server.url, record_dir=tmp_path / "r")
                agent = Agent(env, config, approver=AutoApprover(True))
                try:
                    return await agent.run("press Delete")
                finally:
                    await agent.close()

    result = asyncio.run(go())
    assert result.ok, result
    policy = load(tmp_path / "r").steps[0].policy
    assert policy["rule"] == "ask-before-irreversible-clicks"
    assert policy["asked"] is True and policy["approved"] is True


@pytest.mark.skipif(importlib.util.find_spec("sglang") is not None, reason="sglang is installed")
def test_serve_names_the_serve_extra(capsys):
    code = main(["serve"])
    out = capsys.readouterr().out
    assert code == 2 and "guiagent[serve]" in out, out


@pytest.mark.parametrize("command", ["report", "replay", "export"])
def test_recorded_text_is_printed_as_is(tmp_path, capsys, command):
    """Selectors like dom:id:submit are text: no emoji, no markup eaten."""
    missing = tmp_path / "dom:id:submit [bold]x[/bold]"
    argv = [command, str(missing)] + (
        ["--gif", str(tmp_path / "a.gif")] if command == "export" else []
    )
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "dom:id:submit [bold]x[/bold]" in out, out
