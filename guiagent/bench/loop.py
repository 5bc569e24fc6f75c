"""Per-step overhead of the loop with a zero-latency fake model, split by phase.

Surfaces: a 1920x1080 Xvfb desktop and a 1280x800 Chromium page. The baseline for the browser
is the cheapest viewport screenshot (and Playwright's for reference), the desktop's one mss
grab, both measured in the same run before and after the loop. Also: N concurrent
browser agents against one fake server with a fixed latency, as a ratio of one agent's time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.core.env import Environment
from guiagent.envs.browser import BrowserEnv, launch_chromium
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

PHASES = ("capture", "encode", "request", "parse", "act", "watch", "record", "total")
REPO_ROOT = Path(__file__).resolve().parents[2]
# pages that change on every click, so the loop detector sees progress (as in a real task)
COUNTER_PAGE = (
    "data:text/html,<body style='margin:0;font:320px sans-serif'><button id=b style='width:100vw;height:100vh;font:320px sans-serif'"
    " onclick='this.textContent=++n'>0</button><script>var n=0</script></body>"
)
TK_COUNTER = (
    "import tkinter as tk\n"
    "r=tk.Tk(); r.geometry('1920x1080+0+0'); n=[0]\n"
    "b=tk.Button(r,text='0',font=('DejaVu Sans',320))\n"
    "b.configure(command=lambda: (n.__setitem__(0,n[0]+1), b.configure(text=str(n[0]))))\n"
    "b.pack(fill='both',expand=True); r.mainloop()\n"
)


def _clicker(steps: int, delay_s: float = 0.0):
    """Clicks the middle of the image every turn (the counter there changes), then finishes."""
    count = {"n": 0}

    def responder(request: FakeRequest) -> FakeReply:
        count["n"] += 1
        if count["n"] > steps:
            return FakeReply(tool_calls=[("finish", {"answer": "done"})], delay_s=delay_s)
        # no image decoding here: the fake's own work should not count as loop overhead
        x, y = 400 + count["n"] % 7, 300
        return FakeReply(tool_calls=[("click", {"x": x, "y": y})], delay_s=delay_s)

    return responder


async def _phases(env: Environment, steps: int, tmp: Path) -> dict[str, float]:
    with FakeModelServer(_clicker(steps)) as server:
        agent = Agent(
            env,
            AgentConfig(
                model_url=server.url, record_dir=tmp / "run", settle=False, max_steps=steps + 2
            ),
        )
        try:
            await agent.run("benchmark")
        finally:
            await agent.close()
    run = load(tmp / "run")
    timed = [s.timings for s in run.steps if s.action and s.action.get("action") == "click"][
        2:
    ]  # skip warm-up
    return {phase: statistics.median(t.get(phase, 0.0) for t in timed) for phase in PHASES}


async def _median_ms(call: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def _screenshot_baseline(env: BrowserEnv, repeats: int) -> tuple[float, float]:
    """The floor: the cheapest viewport screenshot (CDP, Chromium's fast PNG encoder), and
    Playwright's ``page.screenshot`` for reference."""
    cdp = await env.page.context.new_cdp_session(env.page)
    shot = {"format": "png", "optimizeForSpeed": True}
    fastest = await _median_ms(lambda: cdp.send("Page.captureScreenshot", shot), repeats)
    playwright = await _median_ms(lambda: env.page.screenshot(type="png"), repeats)
    await cdp.detach()
    return fastest, playwright


def _grab_baseline(display: str, repeats: int) -> float:
    """The desktop floor: one mss grab of the whole 1920x1080 screen."""
    import mss

    samples = []
    with mss.mss(display=display) as grabber:
        monitor = grabber.monitors[1]
        for _ in range(repeats):
            t = time.perf_counter()
            grabber.grab(monitor)
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _rows(
    surface: str, phases: dict[str, float], baseline: float, what: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for phase in PHASES:
        row: dict[str, Any] = {
            "name": f"loop {surface}: {phase}",
            "median_ms": round(phases[phase], 2),
        }
        if phase == "total":
            row["baseline_ms"] = round(baseline, 2)
            row["ratio"] = round(phases[phase] / baseline, 2)
            row["note"] = f"{what}; load {os.getloadavg()[0]:.1f}"
        rows.append(row)
    return rows


async def _browser(steps: int) -> list[dict[str, Any]]:
    with TemporaryDirectory() as tmp:
        async with BrowserEnv(start_url=COUNTER_PAGE, viewport=(1280, 800)) as env:
            fastest, playwright = await _screenshot_baseline(env, 15)
            phases = await _phases(env, steps, Path(tmp))
            after, _ = await _screenshot_baseline(env, 15)  # before and after: paired
    baseline = statistics.median([fastest, after])
    what = (
        f"baseline: the viewport screenshot alone (CDP fast PNG; Playwright's page.screenshot "
        f"{playwright:.1f} ms); target total <= baseline + 15 ms (+{phases['total'] - baseline:.1f})"
    )
    return _rows("browser 1280x800", phases, baseline, what)


async def _desktop(steps: int, quick: bool = False) -> list[dict[str, Any]]:
    from guiagent.bench import desktop_settle
    from guiagent.envs.desktop import DesktopEnv
    from guiagent.envs.display import XvfbDisplay

    with TemporaryDirectory() as tmp, XvfbDisplay((1920, 1080)) as display:
        app = subprocess.Popen(
            [sys.executable, "-c", TK_COUNTER], env={**os.environ, **display.env}
        )
        try:
            subprocess.run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--class", "Tk"],
                env={**os.environ, **display.env},
                timeout=30,
                capture_output=True,
            )
            before = _grab_baseline(display.display, 15)
            async with DesktopEnv(display=display.display) as env:
                phases = await _phases(env, steps, Path(tmp))
                settling = await desktop_settle.rows(env, display.display, quick)
            after = _grab_baseline(display.display, 15)
        finally:
            app.terminate()
            app.wait(10)
    what = "baseline: one mss grab of the screen alone; target total <= 30 ms"
    baseline = statistics.median([before, after])
    return [*_rows("desktop 1920x1080", phases, baseline, what), *settling]


async def _agents(count: int, latency_s: float, steps: int) -> float:
    """Wall time for ``count`` browser agents (one context each) sharing one fake server."""
    with TemporaryDirectory() as tmp:
        url = COUNTER_PAGE
        playwright, browser = await launch_chromium()
        try:
            responders = [_clicker(steps, latency_s) for _ in range(count)]

            def responder(request: FakeRequest) -> FakeReply:
                # each agent's task names its index: route to that agent's own script
                index = int(request.messages[1]["content"].rsplit(" ", 1)[-1])
                return responders[index](request)

            with FakeModelServer(responder) as server:

                async def one(index: int) -> None:
                    async with BrowserEnv(start_url=url, browser=browser) as env:
                        config = AgentConfig(
                            model_url=server.url, settle=False, record_dir=Path(tmp) / f"run{index}"
                        )
                        agent = Agent(env, config)
                        try:
                            result = await agent.run(f"benchmark agent {index}")
                        finally:
                            await agent.close()
                        if not result.ok:
                            raise RuntimeError(
                                f"agent {index} did not finish: {result.stop_reason}"
                            )

                t = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(count)))
                return time.perf_counter() - t
        finally:
            await browser.close()
            await playwright.stop()


async def _concurrency(quick: bool) -> list[dict[str, Any]]:
    steps = 5 if quick else 10
    one = await _agents(1, 0.2, steps)
    four = await _agents(4, 0.2, steps)
    return [
        {
            "name": "1 browser agent, model latency 200 ms",
            "median_ms": round(one * 1000, 1),
            "note": f"{steps} steps",
        },
        {
            "name": "4 browser agents at once, one fake server",
            "median_ms": round(four * 1000, 1),
            "baseline_ms": round(one * 1000, 1),
            "ratio": round(four / one, 2),
            "note": "wall time of all four vs one agent (4.0 = no overlap)",
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    steps = 10 if quick else 30

    async def main() -> list[dict[str, Any]]:
        return [
            *(await _desktop(steps, quick)),
            *(await _browser(steps)),
            *(await _concurrency(quick)),
        ]

    return asyncio.run(main())
