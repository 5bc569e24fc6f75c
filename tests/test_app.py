"""guiagent.app assembles every run: `guiagent run`, a console run, a scenario's `ai:` step
(and the pytest `agent` fixture, which uses the same factory) get the same skills, secrets,
policy and kill switch from the same configuration."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from guiagent.agent.config import AgentConfig
from guiagent.agent.policy import ActionContext
from guiagent.app import RunSettings, build_parts, build_run, model_agent_factory
from guiagent.cli import _config_from_args, build_parser, run_settings_from_args
from guiagent.console.runs import ConsoleRun, RunManager, RunSpec
from guiagent.core.actions import BaseAction, Type
from guiagent.core.env import ActResult, Frame, SurfaceGoneError
from guiagent.core.killswitch import KillSwitch

MODEL = "http://127.0.0.1:9"  # never called: these agents are built, not run
SECRET = "tok-4242-never-shown"


class PlainEnv:
    """An in-memory surface: enough to build an agent on, no browser needed."""

    surface = "browser"

    def __init__(self) -> None:
        self.killswitch: KillSwitch | None = None

    async def observe(self) -> Frame:
        return Frame.from_image(Image.new("RGB", (64, 48)), surface="browser")

    async def act(self, action: BaseAction) -> ActResult:
        return ActResult(ok=False, detail="a plain test surface does not act")

    async def close(self) -> None:
        return None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with its own skill, a policy and a secrets file, configured as a user
    would: ./skills, GUIAGENT_POLICY, GUIAGENT_SECRETS_FILE."""
    (tmp_path / "skills").mkdir()
    (tmp_path / "skills" / "greet.yaml").write_text(
        "name: greet\ndescription: Say hello in the focused field.\n"
        "steps:\n  - type: {text: hello}\n",
        encoding="utf-8",
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - name: no-hello\n    decision: deny\n    reason: no greetings here\n"
        "    when: {action: type, text_regex: hello}\n",
        encoding="utf-8",
    )
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"api_token: {SECRET}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUIAGENT_POLICY", str(policy))
    monkeypatch.setenv("GUIAGENT_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("GUIAGENT_SKILLS", raising=False)
    return tmp_path


def _assert_configured(agent: Any, env: PlainEnv, path: str) -> None:
    assert agent.skills is not None and "greet" in agent.skills.skills, path
    verdict = agent.policy.judge(Type(text="hello there"), ActionContext(surface="browser"))
    assert (verdict.decision, verdict.rule) == ("deny", "no-hello"), path
    redacted = agent.redactor.redact_text(f"the token is {SECRET}")
    assert SECRET not in redacted and redacted.startswith("the token is"), path
    assert isinstance(agent.killswitch, KillSwitch) and env.killswitch is agent.killswitch, path


def test_cli_console_and_ai_step_get_the_same_configuration(project: Path) -> None:
    asyncio.run(_build_each_way(project))


async def _build_each_way(project: Path) -> None:
    # guiagent run (no flags beyond the task, the page and the model)
    args = build_parser("run").parse_args(
        ["run", "say hello", "--start-url", "about:blank", "--model-url", MODEL]
    )
    cli_env = PlainEnv()
    async with build_run(_config_from_args(args), cli_env, run_settings_from_args(args)) as run:
        _assert_configured(run.agent, cli_env, "guiagent run")

    # a console run
    manager = RunManager(project / "recordings")
    spec = RunSpec(task="say hello", start_url="about:blank", model_url=MODEL)
    console_env = PlainEnv()
    agent = manager.make_agent(
        ConsoleRun("r1", "task", spec, None), console_env, AgentConfig(model_url=MODEL)
    )
    _assert_configured(agent, console_env, "console")
    await agent.close()

    # a scenario's ai: step (and the pytest plugin's agent fixture: the same factory)
    factory = model_agent_factory(MODEL)
    assert factory is not None
    ai_env = PlainEnv()
    agent = factory(ai_env)
    _assert_configured(agent, ai_env, "ai step")
    await agent.close()


def test_flags_override_the_environment(project: Path, tmp_path: Path) -> None:
    args = build_parser("run").parse_args(
        ["run", "t", "--start-url", "about:blank", "--no-skills", "--hotkey", ""]
    )
    settings = run_settings_from_args(args)
    assert settings.skills is False and settings.hotkey == ""
    assert settings.policy_path == Path(str(project / "policy.yaml"))
    assert build_parts(settings).skills is None


def test_skill_paths_from_the_environment(tmp_path: Path) -> None:
    settings = RunSettings.from_env(
        {"GUIAGENT_SKILLS": os.pathsep.join(["a", "b"]), "GUIAGENT_POLICY": "p.yaml"}
    )
    assert settings.skill_paths == [Path("a"), Path("b")]
    assert settings.policy_path == Path("p.yaml")


def test_run_sync_opens_the_environment_runs_and_closes_it() -> None:
    """The synchronous call for scripts: a not-yet-started browser is opened and closed."""
    from guiagent.agent.loop import Agent
    from guiagent.envs.browser import BrowserEnv
    from guiagent.testing.fake_server import FakeModelServer, FakeReply

    page = "data:text/html,<p>nothing to do</p>"
    replies = [FakeReply(tool_calls=[("finish", {"answer": "nothing to do"})])]
    with FakeModelServer.scripted(replies) as model:
        env = BrowserEnv(start_url=page)
        agent = Agent(env, AgentConfig(model_url=model.url, settle=False))
        result = agent.run_sync("look at the page")
        assert (result.status, result.answer) == ("finished", "nothing to do")
        assert model.request_count == 1
    with pytest.raises(SurfaceGoneError, match="not started"):
        _ = env.page  # closed after the run
