"""Throughput of eight browser agents on one model server, and on two behind sglang-router.

Each stand-in server models a GPU: every request takes 200 ms and they are generated one at a
time, so eight agents queue on one server. With two servers behind the real router
(``guiagent serve --router``'s settings, cache-aware policy) the same agents should get
close to twice the steps per second.
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
from guiagent.envs.browser import BrowserEnv, launch_chromium
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


async def _measure(steps: int) -> tuple[float, float]:
    """Steps per second with one server, and with two behind the router."""
    playwright, browser = await launch_chromium()
    try:
        with FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as server:
            one_steps, one_s = await _agents(browser, server.url, steps)
        with (
            FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as a,
            FakeModelServer(_clicker(steps), latency_s=LATENCY_S, max_running=1) as b,
        ):
            router = await asyncio.to_thread(LocalRouter([a.url, b.url]).start)
            try:
                two_steps, two_s = await _agents(browser, router.url, steps)
            finally:
                await asyncio.to_thread(router.stop)
    finally:
        await browser.close()
        await playwright.stop()
    return one_steps / one_s, two_steps / two_s


def run(quick: bool = False) -> list[dict[str, Any]]:
    steps = 8 if quick else 20
    # the figures mean something only while the model, not the CPU, is the bottleneck
    load = os.getloadavg()[0]
    one, two = asyncio.run(_measure(steps))
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
    ]
