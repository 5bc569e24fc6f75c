"""guiagent: operate graphical interfaces like a person.

The public Python API, imported on first use so that ``import guiagent`` stays fast::

    from guiagent import Agent, AgentConfig, BrowserEnv

    async with BrowserEnv(start_url="https://example.org") as env:
        async with Agent(env, AgentConfig(model_url="http://127.0.0.1:30000")) as agent:
            result = await agent.run("open the first link")

Like any library using loguru, guiagent leaves its own log disabled until the application
asks for it, after importing guiagent: ``logger.enable("guiagent")`` (the command line does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

__version__ = "0.1.0"

logger.disable("guiagent")

# public name -> module that defines it (imported on first attribute access)
_EXPORTS: dict[str, str] = {
    "Agent": "guiagent.agent.loop",
    "AgentConfig": "guiagent.agent.config",
    "RunResult": "guiagent.agent.config",
    "BrowserEnv": "guiagent.envs.browser",
    "DesktopEnv": "guiagent.envs.desktop",
    "Policy": "guiagent.agent.policy",
    "load_scenario": "guiagent.scenario.schema",
    "run_scenario": "guiagent.app",
    "RunSettings": "guiagent.app",
    "EnvSpec": "guiagent.app",
    "build_run": "guiagent.app",
    "YamlError": "guiagent.core.yamlio",
    "UI": "guiagent.scenario.ui",  # the Python action API: await ui.click("Sign in")
}

__all__ = [  # noqa: RUF022 (grouped as the README introduces them)
    "Agent",
    "AgentConfig",
    "RunResult",
    "BrowserEnv",
    "DesktopEnv",
    "Policy",
    "load_scenario",
    "run_scenario",
    "RunSettings",
    "EnvSpec",
    "build_run",
    "YamlError",
    "UI",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports lazily
    from guiagent.agent.config import AgentConfig, RunResult
    from guiagent.agent.loop import Agent
    from guiagent.agent.policy import Policy
    from guiagent.app import EnvSpec, RunSettings, build_run, run_scenario
    from guiagent.core.yamlio import YamlError
    from guiagent.envs.browser import BrowserEnv
    from guiagent.envs.desktop import DesktopEnv
    from guiagent.scenario.schema import load_scenario
    from guiagent.scenario.ui import UI


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guiagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
