"""Benchmark: per-step overhead of a scenario (settle + ground + act + record), by step kind,
and the shipped ``todos`` scenario against the same flow written as a Playwright script.

Runs on the demo web app in headless Chromium with the local grounder (DOM first, as in
real browser scenarios) and a recorder writing to a temporary directory. Each entry is
the median total of one step kind; the note gives the median settle share.

The side-by-side rows run, in alternation (paired, so a busy machine slows both alike),
``guiagent scenario run scenarios/web/todos.yaml`` and :data:`PLAYWRIGHT_TODOS`, each as a
whole process (interpreter, imports, browser launch, server, flow); and compare the
scenario's median step with the script's median step (its flow time over its 14 steps).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


# the todos scenario as a person would write it with Playwright: locators, real key events
PLAYWRIGHT_TODOS = """
import functools, http.server, sys, threading, time
from playwright.sync_api import expect, sync_playwright

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

root, exe = sys.argv[1], sys.argv[2]
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/guiagent/demo/webapp/index.html"
args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]
with sync_playwright() as p:
    browser = p.chromium.launch(headless=True, executable_path=exe or None, args=args)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url)
    t0 = time.perf_counter()
    page.get_by_label("Username").click(); page.keyboard.type("alice")
    page.get_by_label("Password").click(); page.keyboard.type("secret"); page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Todos")).to_be_visible()
    expect(page.get_by_text("0 items left")).to_be_visible()
    page.get_by_label("New item").click(); page.keyboard.type("Buy milk")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("1 item left")).to_be_visible()
    page.get_by_label("New item").click(); page.keyboard.type("Walk the dog"); page.keyboard.press("Enter")
    expect(page.get_by_text("2 items left")).to_be_visible()
    page.get_by_role("button", name="Complete Buy milk").click()
    expect(page.get_by_text("1 item left")).to_be_visible()
    page.get_by_role("button", name="Delete Walk the dog").click()
    expect(page.get_by_text("Walk the dog")).to_have_count(0)
    expect(page.get_by_text("0 items left")).to_be_visible()
    print((time.perf_counter() - t0) * 1000)
    browser.close()
"""
TODOS_STEPS = 14


def _todos_vs_script(rounds: int) -> list[dict[str, Any]]:
    from guiagent.envs.browser import chromium_executable

    exe = chromium_executable() or ""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "todos_playwright.py"
        script.write_text(PLAYWRIGHT_TODOS)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        scenario_ms: list[float] = []
        script_ms: list[float] = []
        scenario_steps: list[float] = []
        script_steps: list[float] = []
        for r in range(rounds):
            out = Path(tmp) / f"results{r}.json"
            cmd = [sys.executable, "-m", "guiagent.cli", "scenario", "run"]
            cmd += ["scenarios/web/todos.yaml", "--record", f"{tmp}/runs{r}", "--json", str(out)]
            t = time.perf_counter()
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600
            )
            scenario_ms.append((time.perf_counter() - t) * 1000)
            if proc.returncode != 0:
                raise RuntimeError(f"the todos scenario failed: {proc.stdout[-500:]}")
            steps = json.loads(out.read_text())[0]["steps"]
            scenario_steps.append(statistics.median(s["ms"] for s in steps))
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(script), str(REPO), exe],
                capture_output=True,
                text=True,
                timeout=600,
            )
            script_ms.append((time.perf_counter() - t) * 1000)
            if proc.returncode != 0:
                raise RuntimeError(f"the Playwright todos script failed: {proc.stderr[-500:]}")
            script_steps.append(float(proc.stdout.split()[-1]) / TODOS_STEPS)
    load = os.getloadavg()[0]
    whole, base = statistics.median(scenario_ms), statistics.median(script_ms)
    step, base_step = statistics.median(scenario_steps), statistics.median(script_steps)
    return [
        {
            "name": "todos scenario vs Playwright script, whole processes",
            "median_ms": round(whole, 1),
            "baseline_ms": round(base, 1),
            "ratio": round(whole / base, 2),
            "note": f"paired, {rounds} rounds; target <= 1.5x; load {load:.1f}",
        },
        {
            "name": "todos scenario step vs Playwright script step",
            "median_ms": round(step, 1),
            "baseline_ms": round(base_step, 1),
            "ratio": round(step / base_step, 2),
            "note": f"scenario: median step (recorded); script: flow / {TODOS_STEPS}; "
            f"target <= 40 ms; load {load:.1f}",
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows = asyncio.run(_measure(3 if quick else 10))
    return rows + _todos_vs_script(2 if quick else 5)
