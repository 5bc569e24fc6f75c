"""PaCoRe, grounding votes and streaming through the loop (real Chromium, fake model)."""

from __future__ import annotations

import json
import threading

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

PAGE = "tests/apps/inert.html"


async def _run(browser, url, responder, tmp_path, **config):
    async with BrowserEnv(start_url=url, browser=browser) as env:
        with FakeModelServer(responder) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url, record_dir=tmp_path / "run", settle=False, **config
                ),
            )
            try:
                result = await agent.run("Click the field")
            finally:
                await agent.close()
            return result, server


def test_pacore_runs_k_rollouts_at_once_and_executes_the_synthesis(
    async_runner, playwright_browser, static_server, tmp_path
):
    lock = threading.Lock()
    seen = {"rollouts": 0, "synthesis": 0}

    def responder(request: FakeRequest) -> FakeReply:
        text = request.last_user_text
        if "Reference responses" in text:
            with lock:
                seen["synthesis"] += 1
            if seen["synthesis"] == 1:
                return FakeReply(
                    content="I agree with reference 2.",
                    tool_calls=[("click", {"x": 300, "y": 200})],
                )
            return FakeReply(tool_calls=[("finish", {"answer": "done"})])
        with lock:
            seen["rollouts"] += 1
            n = seen["rollouts"]
        return FakeReply(
            content=f"rollout {n}", tool_calls=[("click", {"x": 100 + n, "y": 100})], delay_s=0.2
        )

    result, server = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), responder, tmp_path, pacore=4)
    )
    assert result.ok
    assert server.max_concurrency == 4
    synthesis = [r for r in server.requests if "Reference responses" in r.last_user_text]
    assert len(synthesis) == 2 and len(synthesis[0].image_urls) == 1  # the image is attached again
    for n in range(1, 5):
        assert f"rollout {n}" in synthesis[0].last_user_text
    first = load(tmp_path / "run").steps[0]
    assert first.action == {
        "action": "click",
        "x": 300.0,
        "y": 200.0,
    }  # the synthesis's, not a rollout's
    assert first.request["pacore"]["k"] == 4 and len(first.request["pacore"]["conclusions"]) == 4


def test_ground_votes_take_the_densest_cluster(
    async_runner, playwright_browser, static_server, tmp_path
):
    points = iter([(400, 300), (402, 301), (401, 299), (900, 50), (403, 300)])
    lock = threading.Lock()
    turn = {"n": 0}

    def responder(request: FakeRequest) -> FakeReply:
        with lock:
            turn["n"] += 1
            n = turn["n"]
        if n <= 5:
            x, y = next(points)
            return FakeReply(tool_calls=[("click", {"x": x, "y": y})], delay_s=0.1)
        return FakeReply(tool_calls=[("finish", {"answer": "ok"})])

    result, server = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), responder, tmp_path, ground_votes=5)
    )
    assert result.ok
    assert server.max_concurrency == 5
    first = load(tmp_path / "run").steps[0]
    assert first.action == {"action": "click", "x": 401.5, "y": 300.0}
    assert first.request["votes"]["agreement"] == 0.8 and first.request["votes"]["members"] == 4


def test_streaming_replies_drive_the_loop_and_reach_the_event_sink(
    async_runner, playwright_browser, static_server, tmp_path
):
    deltas = []
    replies = iter(
        [
            FakeReply(
                reasoning="The notes field is near the bottom. " * 5,
                tool_calls=[("click", {"x": 50, "y": 50})],
            ),
            FakeReply(tool_calls=[("finish", {"answer": "ok"})]),
        ]
    )

    async def go():
        async with BrowserEnv(
            start_url=static_server.url_for(PAGE), browser=playwright_browser
        ) as env:
            with FakeModelServer(lambda r: next(replies)) as server:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url, record_dir=tmp_path / "run", settle=False, stream=True
                    ),
                    on_event=lambda kind, data: deltas.append(data) if kind == "delta" else None,
                )
                try:
                    return await agent.run("x"), server
                finally:
                    await agent.close()

    result, server = async_runner.run(go())
    assert result.ok
    assert all(r.body["stream"] is True for r in server.requests)
    reasoning = "".join(d["text"] for d in deltas if d["kind"] == "reasoning")
    assert reasoning.startswith("The notes field is near the bottom.")
    assert load(tmp_path / "run").steps[0].reply["reasoning"].startswith("The notes field")
    assert (
        json.dumps(load(tmp_path / "run").steps[0].action)
        == '{"action": "click", "x": 50.0, "y": 50.0}'
    )
