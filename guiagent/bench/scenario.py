"""Benchmark: per-step overhead of a scenario (settle + ground + act + record), by step kind.

Runs on the demo web app in headless Chromium with the local grounder (DOM first, as in
real browser scenarios) and a recorder writing to a temporary directory. Each entry is
the median total of one step kind; the note gives the median settle share.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

STEP_KINDS: dict[str, dict[str, Any]] = {
    "click (dom)": {"click": {"text": "Username"}},
    "type into (dom)": {"type": {"text": "a", "into": "Username"}},
    "press": {"press": "tab"},
    "expect text (dom)": {"expect": "Sign in"},
    "expect not (dom)": {"expect": {"text": "Welcome back", "not": True}},
    "wait_for (dom)": {"wait_for": "Password"},
    "expect url": {"expect": {"url": "*/index.html"}},
}


async def _measure(reps: int) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    from guiagent.envs.browser import CHROMIUM_ARGS, BrowserEnv, chromium_executable
    from guiagent.grounding.local import LocalGrounder
    from guiagent.record.trajectory import Recorder, RunHeader
    from guiagent.scenario.runner import ScenarioRunner
    from guiagent.scenario.schema import scenario_from_data
    from guiagent.scenario.static import StaticServer

    rows: list[dict[str, Any]] = []
    grounder = LocalGrounder()
    with StaticServer(REPO) as server, tempfile.TemporaryDirectory() as tmp:
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(
            headless=True, executable_path=chromium_executable(), args=list(CHROMIUM_ARGS)
        )
        try:
            url = server.url_for("guiagent/demo/webapp/index.html")
            async with BrowserEnv(start_url=url, browser=browser) as env:
                for n, (label, step) in enumerate(STEP_KINDS.items()):
                    scenario = scenario_from_data({"target": {"url": url}, "steps": [step] * reps})
                    recorder = Recorder(Path(tmp) / f"run{n}", RunHeader(task=label))
                    runner = ScenarioRunner(scenario, env, grounder, recorder=recorder)
                    result = await runner.run()
                    recorder.finish("finished" if result.ok else "failed")
                    if not result.ok:
                        raise RuntimeError(f"bench step {label} failed: {result.failure_message()}")
                    totals = [s.ms for s in result.steps]
                    lines = (Path(tmp) / f"run{n}" / "steps.jsonl").read_text().splitlines()
                    settles = [json.loads(line)["timings"]["settle_ms"] for line in lines]
                    rows.append(
                        {
                            "name": f"scenario step: {label}",
                            "median_ms": statistics.median(totals),
                            "note": f"settle {statistics.median(settles):.0f} ms of it; {reps} steps",
                        }
                    )
        finally:
            await browser.close()
            await pw.stop()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return asyncio.run(_measure(3 if quick else 10))
