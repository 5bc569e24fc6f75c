"""The natural-language part of the demo: the full agent loop on the demo web app.

Its "model" is the fake OpenAI-compatible server driven from the page's DOM
(:mod:`guiagent.testing.dom_oracle`): a stand-in for Step3-VL, which needs a GPU. Everything
else is the real path: Chromium, screenshots, the image plan, the HTTP client, the parser,
the coordinate chain, the policy, the recorder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loguru import logger

from guiagent.agent.config import AgentConfig, RunResult
from guiagent.app import RunSettings, build_run
from guiagent.envs.browser import BrowserEnv
from guiagent.scenario.static import StaticServer
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply

DEMO_TASK = (
    "Sign in as alice (her password is stored under the name demo_password), "
    "add the todo 'buy milk' and mark it complete"
)
DEMO_PLAN = [
    # the login skill types the password from the secret store: the model only names the secret
    OracleStep(
        kind="raw",
        raw=FakeReply(tool_calls=[("login", {"username": "alice", "password": "demo_password"})]),
    ),
    OracleStep(kind="click", selector="#new-item"),
    OracleStep(kind="type", text="buy milk"),
    OracleStep(kind="click", selector="#add-item"),
    OracleStep(kind="click", selector="#todo-list li button:has-text('Complete')"),
    OracleStep(kind="finish", text="alice is signed in; 'buy milk' was added and completed"),
]
DEMO_SECRETS = {
    "demo_password": "secret"
}  # the demo app's password; a real user keeps theirs in the store


async def run_nl_demo(record_dir: Path, repo_root: Path, headless: bool = True) -> RunResult:
    with StaticServer(repo_root) as static:
        url = static.url_for("guiagent/demo/webapp/index.html")
        async with BrowserEnv(start_url=url, headless=headless) as env:
            oracle = DomOracle(env.page, DEMO_PLAN, asyncio.get_running_loop())
            with FakeModelServer(oracle) as server:
                logger.info(
                    "demo model: the fake server at {} answering from the page's DOM (a stand-in, not Step3-VL)",
                    server.url,
                )
                config = AgentConfig(
                    model_url=server.url,
                    record_dir=record_dir,
                    settle_timeout_s=1.0,
                )
                settings = RunSettings.from_env(
                    skills_dir=repo_root / "skills", secret_values=DEMO_SECRETS
                )
                async with build_run(config, env, settings) as run:
                    return await run.agent.run(DEMO_TASK)
