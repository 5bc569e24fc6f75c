"""Skills: YAML and Python, called by the model (fake server) and by scenarios; secrets never leak."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.scenario.runner import ScenarioRunner
from guiagent.scenario.schema import scenario_from_data
from guiagent.skills import SecretStore, SkillError, load_registry
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply

REPO = Path(__file__).resolve().parents[1]
WEBAPP = "guiagent/demo/webapp/index.html"
# the demo app's password is the word "secret", which skill descriptions also use as a word:
# look for it as a value (a JSON string of its own, or typed text)
PASSWORD_RE = re.compile(rb'"secret"|secret\\n|: secret\b')


@pytest.fixture(scope="module")
def registry():
    return load_registry(project_dir=REPO / "skills")


def test_registry_finds_builtins_and_project_skills(registry):
    names = set(registry.skills)
    assert {
        "login",
        "search",
        "wait_for_text",
        "save_file",
        "open_url",
        "fill_form",
        "open_app",
    } <= names
    assert {"demo_add_todo", "demo_complete_todo"} <= names
    login = registry.get("login")
    schema = login.parameters_schema()
    assert schema["required"] == ["username", "password"]
    assert "NAME of a stored secret" in schema["properties"]["password"]["description"]


def test_skills_apply_only_where_declared(registry):
    on_demo = {
        t.name
        for t in registry.tools(
            "browser", "http://127.0.0.1:8000/guiagent/demo/webapp/index.html", "guiagent demo"
        )
    }
    elsewhere = {t.name for t in registry.tools("browser", "https://example.org/", "Example")}
    desktop = {t.name for t in registry.tools("desktop", None, "xcalc")}
    assert "demo_add_todo" in on_demo and "demo_add_todo" not in elsewhere
    assert "save_file" in desktop and "save_file" not in on_demo
    assert "open_app" in desktop and "open_app" not in elsewhere


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"username": "a"}, "missing required parameter 'password'"),
        ({"username": "a", "password": "p", "colour": "red"}, "unknown parameter(s) colour"),
        ({"username": 5, "password": "p"}, "parameter 'username' must be a string"),
    ],
)
def test_parameters_are_validated_with_clear_errors(registry, params, message):
    with pytest.raises(SkillError) as info:
        registry.get("login").validate_params(params)
    assert message in str(info.value)
    assert "skill 'login'" in str(info.value)


def test_missing_secret_names_where_to_put_it():
    with pytest.raises(SkillError, match="GUIAGENT_SECRET_DEMO_PASSWORD"):
        SecretStore(environ={}).get("demo_password")
    assert SecretStore(environ={"GUIAGENT_SECRET_DEMO_PASSWORD": "x"}).get("demo_password") == "x"


async def _agent_run(browser, url, plan, tmp_path, registry, secrets, **config):
    async with BrowserEnv(start_url=url, browser=browser) as env:
        oracle = DomOracle(env.page, plan, asyncio.get_running_loop())
        with FakeModelServer(oracle) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url,
                    record_dir=tmp_path / "run",
                    settle_timeout_s=1.0,
                    **config,
                ),
                skills=registry,
                secrets=secrets,
            )
            try:
                result = await agent.run("Log in as alice, then add 'buy milk' and complete it")
            finally:
                await agent.close()
        state = await env.page.evaluate("() => JSON.parse(JSON.stringify(window.demoState))")
    return result, state, server


def test_model_calls_yaml_and_python_skills_and_the_password_never_leaks(
    async_runner, playwright_browser, static_server, tmp_path, registry
):
    plan = [
        OracleStep(
            kind="raw",
            raw=FakeReply(
                tool_calls=[("login", {"username": "alice", "password": "demo_password"})]
            ),
        ),
        OracleStep(kind="raw", raw=FakeReply(tool_calls=[("demo_add_todo", {"item": "buy milk"})])),
        OracleStep(
            kind="raw", raw=FakeReply(tool_calls=[("demo_complete_todo", {"item": "buy milk"})])
        ),
        OracleStep(kind="finish", text="done"),
    ]
    secrets = SecretStore({"demo_password": "secret"})
    result, state, server = async_runner.run(
        _agent_run(
            playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path, registry, secrets
        ),
        timeout=180,
    )
    assert result.ok, result
    assert state["user"] == "alice"
    assert [(i["text"], i["done"]) for i in state["items"]] == [("buy milk", True)]
    # the skills were offered as tools on this page, with their JSON-schema parameters
    tools = {t["function"]["name"]: t["function"] for t in server.requests[0].body["tools"]}
    assert {"login", "demo_add_todo", "demo_complete_todo"} <= set(tools)
    run = load(tmp_path / "run")
    login_step = run.steps[0]
    assert login_step.action == {"action": "skill", "skill": "login", "params": {
        "username": "alice", "password": "demo_password", "username_field": "Username", "password_field": "Password", "submit": "Sign in"}}  # fmt: skip
    assert [s["status"] for s in login_step.sub_steps] == ["passed", "passed", "passed"]
    assert "[REDACTED]" in login_step.sub_steps[1]["label"]
    assert "items left" in json.dumps(
        server.requests[3].body["messages"]
    )  # the python skill's result reached the model
    for request in server.requests:
        assert not PASSWORD_RE.search(request.raw)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert not PASSWORD_RE.search(path.read_bytes()), path


def test_invalid_skill_arguments_are_sent_back_to_the_model(
    async_runner, playwright_browser, static_server, tmp_path, registry
):
    plan = [
        OracleStep(kind="raw", raw=FakeReply(tool_calls=[("demo_add_todo", {"text": "milk"})])),
        OracleStep(kind="finish", text="gave up"),
    ]
    result, _, server = async_runner.run(
        _agent_run(
            playwright_browser,
            static_server.url_for(WEBAPP),
            plan,
            tmp_path,
            registry,
            SecretStore({}),
        )
    )
    assert result.ok
    run = load(tmp_path / "run")
    assert run.steps[0].outcome == "invalid"
    assert "unknown parameter(s) text" in run.steps[0].invalid
    assert "unknown parameter(s) text" in json.dumps(server.requests[1].body["messages"])


async def _scenario(browser, url, steps):
    async with BrowserEnv(start_url=url, browser=browser) as env:
        scenario = scenario_from_data({"name": "skills", "target": {"url": url}, "steps": steps})
        from guiagent.grounding.local import LocalGrounder

        result = await ScenarioRunner(scenario, env, LocalGrounder()).run()
        state = await env.page.evaluate("() => JSON.parse(JSON.stringify(window.demoState))")
    return result, state


def test_scenario_uses_yaml_and_python_skills(
    async_runner, playwright_browser, static_server, monkeypatch
):
    monkeypatch.setenv("GUIAGENT_SECRET_DEMO_PASSWORD", "secret")
    monkeypatch.chdir(REPO)  # the project's skills/ folder
    steps = [
        {"use": {"skill": "login", "with": {"username": "bob", "password": "demo_password"}}},
        {"use": {"skill": "demo_add_todo", "with": {"item": "walk dog"}}},
        {"use": {"skill": "demo_complete_todo", "with": {"item": "walk dog"}}},
        {"expect": {"text": "0 items left"}},
    ]
    result, state = async_runner.run(
        _scenario(playwright_browser, static_server.url_for(WEBAPP), steps), timeout=180
    )
    assert result.ok, result.failure_message()
    assert state["user"] == "bob"
    assert state["items"][0]["done"] is True


def test_scenario_with_a_bad_skill_parameter_fails_clearly(
    async_runner, playwright_browser, static_server, monkeypatch
):
    monkeypatch.chdir(REPO)
    steps = [{"use": {"skill": "demo_add_todo", "with": {"name": "x"}}}]
    result, _ = async_runner.run(
        _scenario(playwright_browser, static_server.url_for(WEBAPP), steps)
    )
    assert not result.ok
    assert "unknown parameter(s) name" in result.failure_message()


def test_cli_lists_and_shows_skills(capsys, monkeypatch):
    from guiagent.cli import main

    monkeypatch.chdir(REPO)
    assert main(["skills", "list"]) == 0
    out = capsys.readouterr().out
    assert "login" in out and "demo_add_todo" in out
    assert main(["skills", "show", "login"]) == 0
    assert '"password"' in capsys.readouterr().out
    assert main(["skills", "show", "nope"]) == 2
