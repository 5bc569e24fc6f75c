"""On the desktop the untrusted-text note comes from OCR of what changed on screen."""

from __future__ import annotations

import json
from pathlib import Path

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.envs.desktop import DesktopEnv
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply

APP = Path(__file__).parent / "apps" / "tk_notice.py"


def test_desktop_text_asking_the_agent_is_marked_to_the_model(
    async_runner, x_display, tk_app_factory, tmp_path
):
    tk_app_factory(APP, title="notice window")
    replies = [
        FakeReply(tool_calls=[("wait", {"seconds": 0})]),
        FakeReply(tool_calls=[("finish", {"answer": "ok"})]),
    ]

    async def go():
        async with DesktopEnv(display=x_display.display, monitor="all") as env:
            with FakeModelServer.scripted(replies) as server:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url, record_dir=tmp_path / "run", settle_timeout_s=1.0
                    ),
                )
                try:
                    result = await agent.run("Read the window")
                finally:
                    await agent.close()
        return result, server

    result, server = async_runner.run(go(), timeout=300)
    assert result.ok, result
    first = json.dumps(server.requests[0].body["messages"])
    assert "looks like instructions to you" in first
    step = load(tmp_path / "run").steps[0]
    kinds = {i["kind"] for i in step.untrusted or []}
    assert "override" in kinds, step.untrusted
