"""`guiagent run` end to end (its own Chromium, a remote one, exit codes) and many agents at once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.cli import main
from guiagent.envs.browser import BrowserEnv, chromium_executable
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

PAGE = "guiagent/demo/webapp/index.html"


def _finish(request: FakeRequest) -> FakeReply:
    return FakeReply(tool_calls=[("finish", {"answer": "nothing to do"})])


def test_run_exit_code_0_when_the_model_finishes(static_server, tmp_path, capsys):
    with FakeModelServer(_finish) as server:
        code = main(
            [
                "run",
                "look",
                "--start-url",
                static_server.url_for(PAGE),
                "--model-url",
                server.url,
                "--record",
                str(tmp_path / "run"),
            ]
        )
    assert code == 0
    assert "finished" in capsys.readouterr().out
    assert load(tmp_path / "run").header.status == "finished"


def test_run_exit_code_1_when_the_model_fails(static_server, tmp_path):
    with FakeModelServer(
        lambda r: FakeReply(tool_calls=[("fail", {"reason": "no such button"})])
    ) as server:
        code = main(
            [
                "run",
                "look",
                "--start-url",
                static_server.url_for(PAGE),
                "--model-url",
                server.url,
                "--record",
                str(tmp_path / "run"),
            ]
        )
    assert code == 1
    assert load(tmp_path / "run").header.answer == "no such button"


def test_run_exit_code_2_for_usage_and_unreachable_servers(static_server, tmp_path, capsys):
    assert main(["run", "x", "--env", "browser", "--model-url", "http://127.0.0.1:9"]) == 2
    assert "--start-url" in capsys.readouterr().out
    code = main(
        [
            "run",
            "x",
            "--start-url",
            static_server.url_for(PAGE),
            "--model-url",
            "http://127.0.0.1:9",
            "--record",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 2 and "127.0.0.1:9" in out and "guiagent serve" in out
    assert main(["run", "x", "--start-url", static_server.url_for(PAGE)]) == 2  # no --model-url
    assert (
        main(
            [
                "run",
                "x",
                "--start-url",
                static_server.url_for(PAGE),
                "--model-url",
                "http://x",
                "--policy",
                str(tmp_path / "missing.yaml"),
            ]
        )
        == 2
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def run_server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "playwright", "run-server", "--port", str(port), "--host", "127.0.0.1", "--unsafe"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert "Listening on ws://" in line, line
    yield f"ws://127.0.0.1:{port}/"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(3)
            break
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def test_run_on_a_remote_browser_through_playwright_run_server(static_server, tmp_path, run_server):
    with FakeModelServer(_finish) as server:
        code = main([
            "run", "look", "--browser-ws", run_server, "--browser-executable", chromium_executable(),
            "--start-url", static_server.url_for(PAGE), "--model-url", server.url, "--record", str(tmp_path / "run"),
        ])  # fmt: skip
    assert code == 0
    assert load(tmp_path / "run").steps[0].meta["url"].endswith("index.html")


def test_four_agents_share_one_model_server(
    async_runner, playwright_browser, static_server, tmp_path
):
    """Four browser agents (one context each) against one fake server with 200 ms latency all finish."""

    def responder(request: FakeRequest) -> FakeReply:
        done = sum(1 for m in request.messages if m.get("role") == "tool")
        if done >= 3:
            return FakeReply(
                tool_calls=[("finish", {"answer": request.messages[1]["content"]})], delay_s=0.2
            )
        return FakeReply(tool_calls=[("click", {"x": 600, "y": 700})], delay_s=0.2)

    async def one(server_url: str, index: int):
        async with BrowserEnv(
            start_url=static_server.url_for(PAGE), browser=playwright_browser
        ) as env:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server_url, settle=False, record_dir=tmp_path / f"run{index}"
                ),
            )
            try:
                return await agent.run(f"agent {index}")
            finally:
                await agent.close()

    async def all_four(url: str):
        started = time.perf_counter()
        results = await asyncio.gather(*(one(url, i) for i in range(4)))
        return results, time.perf_counter() - started

    with FakeModelServer(responder) as server:
        results, _elapsed = async_runner.run(all_four(server.url), timeout=120)
        assert server.max_concurrency >= 2  # the agents' requests really overlapped
    assert [r.status for r in results] == ["finished"] * 4
    assert sorted(r.answer for r in results) == [f"Task: agent {i}" for i in range(4)]
    for i in range(4):
        assert len(load(tmp_path / f"run{i}").steps) == 4
