"""Run an agent forever (a fake model that keeps waiting) on a headless page; used by kill tests."""

import asyncio
import sys
from pathlib import Path

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.envs.browser import BrowserEnv
from guiagent.testing.fake_server import FakeModelServer, FakeReply


async def main(run_dir: Path) -> None:
    page = "data:text/html,<h1>busy</h1><p id=t></p><script>setInterval(()=>t.textContent=Date.now(),50)</script>"
    async with BrowserEnv(start_url=page) as env:
        with FakeModelServer(
            lambda request: FakeReply(tool_calls=[("wait", {"seconds": 0})])
        ) as server:
            config = AgentConfig(
                model_url=server.url, record_dir=run_dir, settle=False, max_steps=10_000
            )
            await Agent(env, config).run("wait forever")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
