"""Test support for recording/replay/report tests: a page, a real BrowserEnv, a run recorded by hand."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from guiagent.actions import BaseAction, Click, Type
from guiagent.envs.browser import BrowserEnv
from guiagent.geometry import CoordSpace, Point, resolve_point
from guiagent.record import Recorder, RunHeader, StepRecord
from guiagent.record.evidence import collect_evidence, dom_at_point

PAGE = Path(__file__).with_name("replay_form.html")


async def open_env(browser: Any, url: str) -> BrowserEnv:
    """A BrowserEnv (800x600) in a new context of the shared browser."""
    env = BrowserEnv(start_url=url, browser=browser, viewport=(800, 600))
    await env.start()
    return env


def page_url(variant: str = "") -> str:
    return PAGE.as_uri() + (f"?variant={variant}" if variant else "")


async def element_centre(env: Any, selector: str) -> tuple[float, float]:
    box = await env.page.locator(selector).bounding_box()
    return (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


async def record_step(
    env: Any,
    recorder: Recorder,
    index: int,
    action: BaseAction,
    variables: dict[str, Any] | None = None,
) -> StepRecord:
    """Observe, record and execute one step the way the agent loop does (model space = image pixels)."""
    t0 = time.time()
    frame = await env.observe()
    frame_path = recorder.save_frame(frame.image)
    trail: list[dict[str, Any]] = []
    evidence = None
    screen_action = action
    if action.points():
        sent = frame.size
        trail_objs = []
        for sx, sy in action.points():
            fp = frame.transform.screen_to_frame(Point(sx, sy))
            trail_objs.append(resolve_point(fp, CoordSpace.IMAGE, sent, frame.transform))
        trail = [t.to_dict() for t in trail_objs]
        screen_action = action.with_points([(t.screen.x, t.screen.y) for t in trail_objs])
        dom = dom_at_point(await env.dom_elements(), trail_objs[0].screen.x, trail_objs[0].screen.y)
        evidence = collect_evidence(
            recorder, frame.image, (trail_objs[0].frame.x, trail_objs[0].frame.y), dom=dom
        )
    step = StepRecord(
        index=index,
        started_at=t0,
        frame=frame_path,
        frame_size=[frame.image.width, frame.image.height],
        sent_size=[frame.image.width, frame.image.height],
        meta={**frame.meta, "transform": {"origin": [0.0, 0.0], "scale": frame.transform.scale}},
        request={
            "messages": 2,
            "prompt_chars": 120,
            "image_tokens": 504,
            "tools": ["click", "type"],
        },
        reply={
            "content": "",
            "reasoning": f"I will {action.name} now.",
            "tool_calls": [{"name": action.name, "arguments": action.arguments()}],
        },
        action=action.model_dump(),
        screen_action=screen_action.model_dump(),
        trail=trail,
        evidence=evidence,
        variables=variables or {},
        timings={"capture": 10.0, "request": 900.0, "act": 5.0},
    )
    await env.act(screen_action)
    recorder.append(step)
    return step


async def record_form_run(env: Any, run_dir: Path, username: str = "alice") -> Path:
    """Record: click username, type it (a variable), click Sign in, Add item twice, finish."""
    recorder = Recorder(run_dir, RunHeader(task="sign in and add two items", surface="browser"))
    with recorder:
        ux, uy = await element_centre(env, "#username")
        sx, sy = await element_centre(env, "#signin")
        ax, ay = await element_centre(env, "#add")
        plan: list[tuple[BaseAction, dict[str, Any] | None]] = [
            (Click(x=ux, y=uy), None),
            (Type(text=username), {"name": "username"}),
            (Click(x=sx, y=sy), None),
            (Click(x=ax, y=ay), None),
            (Click(x=ax, y=ay), None),
        ]
        for i, (action, variables) in enumerate(plan):
            await record_step(env, recorder, i, action, variables)
        frame = await env.observe()
        recorder.append(
            StepRecord(
                index=len(plan),
                frame=recorder.save_frame(frame.image),
                frame_size=[frame.image.width, frame.image.height],
                action={"action": "finish", "answer": "done"},
                screen_action={"action": "finish", "answer": "done"},
            )
        )
        recorder.finish("finished", stop_reason="finish", answer="done")
    return run_dir


async def page_state(env: Any) -> dict[str, Any]:
    return dict(
        await env.page.evaluate(
            "() => ({status: document.getElementById('status').textContent,"
            " items: document.getElementById('items').children.length,"
            " username: document.getElementById('username').value})"
        )
    )
