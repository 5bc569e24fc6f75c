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
from guiagent.agent.loop import Agent
from guiagent.envs.browser import BrowserEnv
from guiagent.scenario.static import StaticServer
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer

DEMO_TASK = "Sign in as alice (password: secret), add the todo 'buy milk' and mark it complete"
DEMO_PLAN = [
    OracleStep(kind="click", selector="#username"),
    OracleStep(kind="type", text="alice"),
    OracleStep(kind="click", selector="#password"),
    OracleStep(kind="type", text="secret"),
    OracleStep(kind="click", selector="#sign-in"),
    OracleStep(kind="click", selector="#new-item"),
    OracleStep(kind="type", text="buy milk"),
    OracleStep(kind="click", selector="#add-item"),
    OracleStep(kind="click", selector="#todo-list li button:has-text('Complete')"),
    OracleStep(kind="finish", text="alice is signed in; 'buy milk' was added and completed"),
]


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
                    secrets=["secret"],
                    settle_timeout_s=1.0,
                )
                agent = Agent(env, config)
                try:
                    return await agent.run(DEMO_TASK)
                finally:
                    await agent.close()
