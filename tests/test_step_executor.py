"""One step executor for every input event: the model's, a skill's, a YAML step's, a Python
``UI`` call's. The policy that stops a model click stops the same click made by a skill, and
YAML and the Python action API do the same thing and record the same steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.agent.policy import Policy, PolicyRule
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.record.trajectory import Recorder, RunHeader
from guiagent.scenario.runner import ScenarioRunner
from guiagent.scenario.schema import scenario_from_data
from guiagent.scenario.ui import UI, StepFailure
from guiagent.skills import SecretStore, load_registry
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply

REPO = Path(__file__).resolve().parents[1]
WEBAPP = "guiagent/demo/webapp/index.html"
STATE = "() => JSON.parse(JSON.stringify(window.demoState))"


def _no_sign_in() -> Policy:
    return Policy(
        [
            PolicyRule(
                name="no-sign-in",
                decision="deny",
                when={"action": ["click"], "target_words": ["Sign in"]},
            )
        ]
    )


async def _agent_run(browser: Any, url: str, plan: list[OracleStep], run_dir: Path) -> Any:
    async with BrowserEnv(start_url=url, browser=browser) as env:
        await env.page.fill("#username", "alice")
        await env.page.fill("#password", "secret")
        oracle = DomOracle(env.page, plan, asyncio.get_running_loop())
        with FakeModelServer(oracle) as server:
            agent = Agent(
                env,
                AgentConfig(model_url=server.url, record_dir=run_dir, settle_timeout_s=1.0),
                skills=load_registry(project_dir=REPO / "skills"),
                secrets=SecretStore({"demo_password": "secret"}),
                policy=_no_sign_in(),
            )
            try:
                result = await agent.run("Sign in as alice")
            finally:
                await agent.close()
        state = await env.page.evaluate(STATE)
    return result, state, server


def test_a_deny_rule_stops_the_same_click_from_the_model_and_from_a_skill(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Path
) -> None:
    url = static_server.url_for(WEBAPP)
    # the model clicks "Sign in" itself: denied, the page stays signed out
    plan = [OracleStep(kind="click", selector="#sign-in"), OracleStep(kind="finish", text="ok")]
    result, state, server = async_runner.run(
        _agent_run(playwright_browser, url, plan, tmp_path / "model"), timeout=180
    )
    assert result.ok and not state.get("user")
    step = load(tmp_path / "model").steps[0]
    assert step.outcome == "denied" and step.policy["rule"] == "no-sign-in"
    assert "denied by policy" in json.dumps(server.requests[1].body["messages"])

    # the model asks the login skill, whose last step clicks "Sign in": the same rule stops it
    login = ("login", {"username": "alice", "password": "demo_password"})
    plan = [OracleStep(kind="raw", raw=FakeReply(tool_calls=[login])), OracleStep(kind="finish")]
    result, state, server = async_runner.run(
        _agent_run(playwright_browser, url, plan, tmp_path / "skill"), timeout=180
    )
    assert not state.get("user"), "the skill's click went through despite the deny rule"
    step = load(tmp_path / "skill").steps[0]
    assert step.action["skill"] == "login" and step.outcome == "error"
    assert [s["status"] for s in step.sub_steps] == ["passed", "passed", "failed"]
    click = step.sub_steps[2]
    assert click["policy"]["rule"] == "no-sign-in" and "denied by policy" in click["error"]
    assert click["screen_action"]["action"] == "click" and click["outcome"] == "failed"
    # the skill's other input events were recorded as the executor sees them
    assert [s["screen_action"]["action"] for s in step.sub_steps[1]["sub_steps"]] == [
        "click",
        "type",
    ]
    assert "denied by policy" in json.dumps(server.requests[1].body["messages"])


LOGIN_FLOW = [
    {"type": {"text": "alice", "into": "Username"}},
    {"type": {"text": "secret", "into": "Password", "enter": True}},
    {"wait_for": "Todos"},
    {"type": {"text": "Buy milk", "into": "New item"}},
    {"click": {"text": "Add", "role": "button"}},
    {"expect": "1 item left"},
    {"press": "tab"},
]


async def _flow(browser: Any, url: str, run_dir: Path, python: bool) -> tuple[Any, Any]:
    from guiagent.grounding.local import LocalGrounder

    async with BrowserEnv(start_url=url, browser=browser) as env:
        recorder = Recorder(run_dir, RunHeader(task="flow", surface="browser"))
        if python:
            ui = UI(env, LocalGrounder(), recorder=recorder)
            await ui.type("alice", into="Username")
            await ui.type("secret", into="Password", enter=True)
            await ui.wait_for("Todos")
            await ui.type("Buy milk", into="New item")
            await ui.click({"text": "Add", "role": "button"})
            await ui.expect("1 item left")
            await ui.press("tab")
            with pytest.raises(StepFailure, match="no text matching"):
                await ui.click("Nothing like this", timeout=0.5)
        else:
            data = {"name": "flow", "target": {"url": url}, "steps": LOGIN_FLOW}
            scenario = scenario_from_data(data)
            result = await ScenarioRunner(scenario, env, LocalGrounder(), recorder=recorder).run()
            assert result.ok, result.failure_message()
        recorder.finish("finished")
        state = await env.page.evaluate(STATE)
    return state, load(run_dir)


def test_yaml_and_the_python_ui_do_and_record_the_same(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Path
) -> None:
    url = static_server.url_for(WEBAPP)
    yaml_state, yaml_run = async_runner.run(
        _flow(playwright_browser, url, tmp_path / "yaml", python=False), timeout=240
    )
    ui_state, ui_run = async_runner.run(
        _flow(playwright_browser, url, tmp_path / "ui", python=True), timeout=240
    )
    assert yaml_state["user"] == ui_state["user"] == "alice"
    assert [i["text"] for i in yaml_state["items"]] == [i["text"] for i in ui_state["items"]]
    assert [i["text"] for i in ui_state["items"]] == ["Buy milk"]

    def kinds(run: Any) -> list[tuple[str, Any, list[Any]]]:
        return [
            (
                s.model_extra["scenario_step"]["kind"],
                s.action_name,
                [sub["screen_action"]["action"] for sub in s.sub_steps],
            )
            for s in run.steps
        ]

    ui_kinds = kinds(ui_run)
    assert ui_kinds[: len(LOGIN_FLOW)] == kinds(yaml_run)
    assert ui_kinds[1] == ("type", "type", ["click", "type", "key"])
    assert ui_kinds[-1][0] == "click" and ui_run.steps[-1].outcome == "failed"
    for path in (tmp_path / "ui").rglob("*.json*"):  # the password is typed, never written
        assert b'"secret"' not in path.read_bytes(), path
