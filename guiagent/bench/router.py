"""Throughput of eight browser agents on one model server, and on two behind sglang-router.

Each stand-in server models a GPU: every request takes 200 ms and they are generated one at a
time, so eight agents queue on one server. With two servers behind the real router
(``guiagent serve --router``'s settings, cache-aware policy) the same agents should get
close to twice the steps per second. On a busy machine the browsers' own work (screenshots,
encoding) can become the bottleneck instead, so the same comparison also runs without browsers:
eight clients sending the agents' requests (same prompts, growing history) and nothing else.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from typing import Any

if importlib.util.find_spec("sglang_router") is None:
    raise ImportError("sglang-router is not installed: pip install 'guiagent[scale]'")

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.bench.loop import COUNTER_PAGE
from guiagent.core.geometry import CoordSpace, Size
from guiagent.envs.browser import BrowserEnv, launch_chromium
from guiagent.models.openai_client import ModelClient
from guiagent.models.step3vl import Conversation
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.router import LocalRouter

AGENTS = 8
LATENCY_S = 0.2


def _clicker(steps: int):
    """Clicks the counter, then finishes after ``steps`` clicks; stateless (the history says
    how far the agent is), so any server can answer any agent's request."""

    def responder(request: FakeRequest) -> FakeReply:
        done = sum(1 for m in request.messages if m.get("role") == "tool")
        if done >= steps:
            return FakeReply(tool_calls=[("finish", {"answer": "done"})])
        return FakeReply(tool_calls=[("click", {"x": 300 + done % 7, "y": 200})])

    return responder


async def _agents(browser: Any, url: str, steps: int) -> tuple[int, float]:
    """(steps taken, wall seconds) for AGENTS agents at once against ``url``."""

    async def one(index: int) -> int:
        async with BrowserEnv(start_url=COUNTER_PAGE, browser=browser, viewport=(640, 400)) as env:
            agent = Agent(env, AgentConfig(model_url=url, settle=False, max_steps=steps + 4))
            try:
                result = await agent.run(f"benchmark agent {index}")
            finally:
                await agent.close()
        if not result.ok:
            raise RuntimeError(f"agent {index} did not finish: {result.stop_reason}")
        return result.steps

    started = time.perf_counter()
    taken = await asyncio.gather(*(one(i) for i in range(AGENTS)))
    return sum(taken), time.perf_counter() - started


async def _clients(url: str, steps: int) -> tuple[int, float]:
    """(requests, wall seconds) for AGENTS clients sending what agents send, without browsers."""
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("click", "finish")
    ]

    async def one(index: int) -> int:
        talk = Conversation("browser", f"benchmark agent {index}", CoordSpace.IMAGE, Size(640, 400))
        async with ModelClient(url, model="stepfun-ai/Step3-VL-10B") as client:
            for step in range(1, steps + 2):
                done = await client.complete(talk.messages(b"\xff\xd8", "image/jpeg", step), tools)
                call = done.reply.tool_calls[0]
                if call.name == "finish":
                    return step
                talk.add_action(call.name, call.arguments, "clicked; the page changed")
        raise RuntimeError(f"client {index} never got finish")

    started = time.perf_counter()
    sent = await asyncio.gather(*(one(i) for i in range(AGENTS)))
    return sum(sent), time.perf_counter() - started


async def _compare(run: Any, steps: int) -> tuple[float, float]:
    """Steps per second of ``run(url, steps)`` with one server, and with two behind the router."""
    with FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as server:
        one_steps, one_s = await run(server.url, steps)
    with (
        FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as a,
        FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as b,
    ):
        router = await asyncio.to_thread(LocalRouter([a.url, b.url]).start)
        try:
            two_steps, two_s = await run(router.url, steps)
        finally:
            await asyncio.to_thread(router.stop)
    return one_steps / one_s, two_steps / two_s


async def _measure(steps: int) -> tuple[tuple[float, float], tuple[float, float]]:
    playwright, browser = await launch_chromium()
    try:
        agents = await _compare(lambda url, n: _agents(browser, url, n), steps)
    finally:
        await browser.close()
        await playwright.stop()
    return agents, await _compare(_clients, steps)


def run(quick: bool = False) -> list[dict[str, Any]]:
    steps = 8 if quick else 20
    # the figures mean something only while the model, not the CPU, is the bottleneck
    load = os.getloadavg()[0]
    (one, two), (bare_one, bare_two) = asyncio.run(_measure(steps))
    gpu = f"{LATENCY_S * 1000:.0f} ms/request, one at a time"
    return [
        {
            "name": f"{AGENTS} browser agents, 1 model server",
            "median_ms": round(1000 / one, 1),
            "steps_per_s": round(one, 2),
            "note": f"{one:.2f} steps/s (ms per step; server {gpu}; {steps} steps each)",
        },
        {
            "name": f"{AGENTS} browser agents, 2 servers behind sglang-router",
            "median_ms": round(1000 / two, 1),
            "baseline_ms": round(1000 / one, 1),
            "steps_per_s": round(two, 2),
            "ratio": round(two / one, 2),
            "note": f"{two:.2f} steps/s; ratio = steps/s vs 1 server (target >= 1.8); "
            f"load average {load:.1f} at the start",
        },
        {
            "name": f"{AGENTS} clients without browsers, 1 model server",
            "median_ms": round(1000 / bare_one, 1),
            "steps_per_s": round(bare_one, 2),
            "note": f"{bare_one:.2f} steps/s (the agents' requests only)",
        },
        {
            "name": f"{AGENTS} clients without browsers, 2 servers behind sglang-router",
            "median_ms": round(1000 / bare_two, 1),
            "baseline_ms": round(1000 / bare_one, 1),
            "steps_per_s": round(bare_two, 2),
            "ratio": round(bare_two / bare_one, 2),
            "note": f"{bare_two:.2f} steps/s; ratio = steps/s vs 1 server (target >= 1.8)",
        },
    ]
