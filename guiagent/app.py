"""The one place that assembles a run from configuration.

``guiagent run``, the console, scenario ``ai:`` steps, the pytest plugin's ``agent`` fixture
and the demo all build their agent here, so each of them gets the same parts:

- the environment (:class:`EnvSpec` -> :class:`~guiagent.envs.browser.BrowserEnv` or
  :class:`~guiagent.envs.desktop.DesktopEnv`), unless the caller brings its own;
- the model client (made by the agent from ``AgentConfig.model_url``, closed with it);
- skills: the built-ins, installed packages' entry points, the project's ``skills/`` folder and
  any extra paths;
- the secret store: given values, ``GUIAGENT_SECRET_<NAME>``, the secrets file;
- the policy (``AgentConfig.policy_path``, else ``RunSettings.policy_path``, else the built-in);
- the approver (the caller's, else a terminal prompt that denies without a terminal);
- the kill switch (handed to the environment; on the desktop also a hotkey);
- the recorder (opened by the agent in ``AgentConfig.record_dir``).

Settings that have no command-line flag in every face come from the environment variables
``GUIAGENT_POLICY``, ``GUIAGENT_SKILLS`` (paths separated by ``os.pathsep``) and
``GUIAGENT_SECRETS_FILE`` (see :meth:`RunSettings.from_env`), so that a console run or a
scenario's ``ai:`` step is configured exactly like ``guiagent run``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from guiagent.agent.config import AgentConfig
from guiagent.agent.policy import Approver, Policy
from guiagent.core.env import Environment
from guiagent.core.killswitch import KillSwitch

if TYPE_CHECKING:
    from guiagent.agent.control import RunControl
    from guiagent.agent.loop import Agent, EventSink
    from guiagent.models.openai_client import ModelClient
    from guiagent.scenario.runner import ScenarioResult
    from guiagent.scenario.schema import Scenario
    from guiagent.skills.model import SecretStore
    from guiagent.skills.registry import SkillRegistry

DEFAULT_HOTKEY = "ctrl+alt+k"


class RunSettings(BaseModel):
    """What a run gets besides its :class:`AgentConfig`: skills, secrets, policy, kill switch."""

    model_config = ConfigDict(extra="forbid")

    skills: bool = True  # False: offer the model no skills
    skill_paths: list[Path] = Field(default_factory=list)  # more skill files or folders
    skills_dir: Path | None = None  # the project's skills folder (None: ./skills)
    secrets_file: Path | None = None  # None: $GUIAGENT_SECRETS_FILE
    secret_values: dict[str, str] = Field(default_factory=dict)  # name -> value, tried first
    policy_path: Path | None = None  # used when AgentConfig.policy_path is not set
    hotkey: str | None = DEFAULT_HOTKEY  # desktop kill-switch chord (None or "": none)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RunSettings:
        """Settings from ``GUIAGENT_POLICY`` and ``GUIAGENT_SKILLS``; ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if environ.get("GUIAGENT_POLICY"):
            values["policy_path"] = Path(environ["GUIAGENT_POLICY"])
        if environ.get("GUIAGENT_SKILLS"):
            values["skill_paths"] = [
                Path(p) for p in environ["GUIAGENT_SKILLS"].split(os.pathsep) if p
            ]
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


class EnvSpec(BaseModel):
    """Which surface to open, and how."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["browser", "desktop"] = "browser"
    start_url: str | None = None
    cdp_url: str | None = None  # browser: attach to a running Chromium
    ws_endpoint: str | None = None  # browser: a `playwright run-server` endpoint
    headless: bool = True
    viewport: tuple[int, int] = (1280, 800)
    device_scale_factor: float = 1.0
    executable_path: str | None = None
    display: str | None = None  # desktop: None is $DISPLAY, else a fresh Xvfb
    monitor: int | Literal["all"] = "all"


def make_env(spec: EnvSpec) -> Environment:
    """The environment ``spec`` describes, not yet started (``async with`` it)."""
    if spec.kind == "browser":
        from guiagent.envs.browser import BrowserEnv

        if not (spec.start_url or spec.cdp_url or spec.ws_endpoint):
            raise ValueError(
                "--env browser needs --start-url URL, --browser-cdp URL or --browser-ws URL"
            )
        return BrowserEnv(
            start_url=spec.start_url,
            cdp_url=spec.cdp_url,
            ws_endpoint=spec.ws_endpoint,
            headless=spec.headless,
            viewport=spec.viewport,
            device_scale_factor=spec.device_scale_factor,
            executable_path=spec.executable_path,
        )
    from guiagent.envs.desktop import DesktopEnv

    return DesktopEnv(display=spec.display, monitor=spec.monitor)


@dataclass
class RunParts:
    """Skills, secrets and kill switch shared by the agents of one configuration."""

    skills: SkillRegistry | None
    secrets: SecretStore
    killswitch: KillSwitch
    settings: RunSettings

    def policy(self, config: AgentConfig) -> Policy:
        """A fresh policy per agent: an agent adds the secrets it learns to its own policy."""
        return Policy.load(config.policy_path or self.settings.policy_path)


def build_parts(
    settings: RunSettings | None = None, killswitch: KillSwitch | None = None
) -> RunParts:
    """Load the skills and open the secret store ``settings`` name (SkillError when they are bad)."""
    from guiagent.scenario.ui import ui_steps_runner  # how YAML skills run their steps
    from guiagent.skills.model import SecretStore
    from guiagent.skills.registry import load_registry

    settings = settings or RunSettings.from_env()
    skills = (
        load_registry(
            settings.skill_paths, project_dir=settings.skills_dir, steps_runner=ui_steps_runner
        )
        if settings.skills
        else None
    )
    secrets = SecretStore(settings.secret_values, file=settings.secrets_file)
    return RunParts(skills, secrets, killswitch or KillSwitch(), settings)


def make_agent(
    env: Environment,
    config: AgentConfig,
    parts: RunParts | None = None,
    *,
    approver: Approver | None = None,
    control: RunControl | None = None,
    on_event: EventSink | None = None,
    client: ModelClient | None = None,
) -> Agent:
    """An agent on ``env`` with the parts of one configuration (default: from the environment)."""
    from guiagent.agent.loop import Agent

    parts = parts or build_parts()
    return Agent(
        env,
        config,
        client=client,
        skills=parts.skills,
        secrets=parts.secrets,
        policy=parts.policy(config),
        approver=approver,
        killswitch=parts.killswitch,
        control=control,
        on_event=on_event,
    )


@dataclass
class Run:
    """An assembled run: ``await run.agent.run(task)`` inside :func:`build_run`."""

    env: Environment
    agent: Agent
    parts: RunParts
    hotkey: str | None = None  # the kill-switch chord listening, if any
    notes: list[str] = field(default_factory=list)  # what could not be set up, for the user

    async def run(self, task: str) -> Any:
        return await self.agent.run(task)


@contextlib.asynccontextmanager
async def build_run(
    config: AgentConfig,
    env: EnvSpec | Environment,
    settings: RunSettings | None = None,
    *,
    approver: Approver | None = None,
    control: RunControl | None = None,
    on_event: EventSink | None = None,
    client: ModelClient | None = None,
    install_sigint: bool = False,
) -> AsyncIterator[Run]:
    """Assemble a run; an environment made from an :class:`EnvSpec` is closed on exit, one
    passed in is left open. ``install_sigint``: Ctrl-C trips the kill switch (command line)."""
    parts = build_parts(settings)
    with contextlib.ExitStack() as stack:
        if install_sigint:
            stack.enter_context(parts.killswitch.install_sigint())
        async with contextlib.AsyncExitStack() as astack:
            if isinstance(env, EnvSpec):
                env = await astack.enter_async_context(make_env(env))  # type: ignore[arg-type]
            run = Run(
                env,
                make_agent(
                    env,
                    config,
                    parts,
                    approver=approver,
                    control=control,
                    on_event=on_event,
                    client=client,
                ),
                parts,
            )
            astack.push_async_callback(run.agent.close)
            _listen_for_hotkey(run, stack)
            yield run


def _listen_for_hotkey(run: Run, stack: contextlib.ExitStack) -> None:
    """On the desktop, the kill-switch chord (Ctrl-C and a screen corner work everywhere)."""
    hotkey = run.parts.settings.hotkey
    if run.env.surface != "desktop" or not hotkey:
        return
    from guiagent.core.env import display_of
    from guiagent.core.killswitch import HotkeyError, HotkeyListener

    try:
        listener = HotkeyListener(run.parts.killswitch, hotkey=hotkey, display=display_of(run.env))
        stack.enter_context(listener)
        run.hotkey = hotkey
    except HotkeyError as exc:
        logger.info("no kill-switch hotkey: {}", exc)
        run.notes.append(f"no kill-switch hotkey: {exc} (Ctrl-C still stops the run)")


def agent_factory(
    model_url: str,
    settings: RunSettings | None = None,
    config: AgentConfig | None = None,
) -> Callable[[Environment], Agent]:
    """Agents for scenario ``ai:`` steps and the pytest ``agent`` fixture: one configuration
    (skills, secrets and kill switch loaded once), a fresh agent and policy per call."""
    parts = build_parts(settings)
    base = (config or AgentConfig()).model_copy(update={"model_url": model_url})

    def make(env: Environment) -> Agent:
        return make_agent(env, base, parts)

    return make


def model_agent_factory(
    model: str | None, settings: RunSettings | None = None
) -> Callable[[Environment], Agent] | None:
    """What ``ai`` / ``ai_assert`` steps use: agents on the model server at ``model``, or None
    for ``local`` (those steps then fail with a clear message). Risky actions go through the
    default approver: asked on a terminal, denied without one."""
    if not model or model == "local":
        return None
    return agent_factory(model, settings)


async def run_scenario(
    scenario: Scenario | str | Path,
    *,
    model: str | None = None,
    record_dir: str | Path | None = None,
    record: bool = True,
    headless: bool = True,
    variables: Mapping[str, str] | None = None,
    settings: RunSettings | None = None,
) -> ScenarioResult:
    """Run one scenario (a file or a loaded one): set up its page or program, run, tear down.

    ``model``: a model server URL for ``ai:`` steps (their agents assembled here, with
    ``settings``); None or ``"local"`` runs without a model (``ai:`` steps then fail with a
    clear message). A failing scenario is a result, not an exception; a file that does not
    load raises :class:`~guiagent.scenario.schema.ScenarioError`.
    """
    from guiagent.scenario.schema import Scenario, load_scenario
    from guiagent.scenario.session import ScenarioSession, SessionOptions

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, variables=variables)
    options = SessionOptions(
        record_dir=Path(record_dir) if record_dir is not None else None,
        record=record,
        headless=headless,
        agent_factory=model_agent_factory(model, settings),
    )
    async with ScenarioSession(options) as session:
        return await session.run(scenario)
