"""Test support for recording/replay/report tests: a page, a real BrowserEnv, a run recorded by
hand; the Tk demo app and a stand-in model that reads it with OCR (also used by
scripts/make_recordings.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from guiagent.core.actions import BaseAction, Click, Type
from guiagent.core.env import Frame
from guiagent.core.geometry import CoordSpace, Point, resolve_point
from guiagent.demo import tkapp
from guiagent.envs.browser import BrowserEnv
from guiagent.grounding.local import LocalGrounder
from guiagent.record import Recorder, RunHeader, StepRecord
from guiagent.record.evidence import collect_evidence, dom_evidence
from guiagent.testing.fake_server import FakeReply, FakeRequest
from guiagent.testing.fixtures import TkApp, launch_tk_app

PAGE = Path(__file__).with_name("replay_form.html")
TKAPP = Path(tkapp.__file__)
TKAPP_TITLE = tkapp.TITLE
HOME = "640x400+100+100"  # where the Tk demo app's recordings were made


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
        dom = await dom_evidence(env, trail_objs[0].screen.x, trail_objs[0].screen.y)
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


class OcrGreetModel:
    """Reads "Name" and "Greet" in the first screenshot; clicks the entry, types, greets, finishes."""

    def __init__(self, grounder: LocalGrounder, name: str) -> None:
        self.grounder, self.name = grounder, name
        self.turn = 0
        self.points: dict[str, Point] = {}

    def _locate(self, request: FakeRequest) -> None:
        frame = Frame.from_image(request.image)
        boxes = {}
        for label in ("Name", "Greet"):
            found = self.grounder.find_text(frame, label, exact=True)
            assert len(found) == 1, f"stand-in model: {label!r} seen {len(found)} times"
            boxes[label] = found[0].box
        label, button = boxes["Name"], boxes["Greet"]
        # the entry sits between the label and the button
        self.points["entry"] = Point((label.right + button.left) / 2, label.centre.y)
        self.points["greet"] = button.centre

    def __call__(self, request: FakeRequest) -> FakeReply:
        self.turn += 1
        if not self.points:
            self._locate(request)
        if self.turn == 1:
            p = self.points["entry"]
            return FakeReply(
                reasoning="(stand-in) the Name entry", tool_calls=[("click", {"x": p.x, "y": p.y})]
            )
        if self.turn == 2:
            return FakeReply(tool_calls=[("type", {"text": self.name})])
        if self.turn == 3:
            p = self.points["greet"]
            return FakeReply(
                reasoning="(stand-in) Greet", tool_calls=[("click", {"x": p.x, "y": p.y})]
            )
        return FakeReply(tool_calls=[("finish", {"answer": "greeted"})])


def launch_tk_demo(env: dict[str, str], state: Path, geometry: str = HOME) -> TkApp:
    """The Tk demo app with a state file, once its window is mapped, ready and painted."""
    app = launch_tk_app(
        TKAPP, "--state-file", str(state), "--geometry", geometry, title=TKAPP_TITLE, env=env
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text()).get("ready"):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # first paint
    return app


def record_form_run_once(async_runner: Any, browser: Any, run_dir: Path) -> Path:
    """Record the form run on a fresh page of the shared browser (for module fixtures)."""

    async def go() -> Path:
        env = await open_env(browser, page_url())
        try:
            return await record_form_run(env, run_dir)
        finally:
            await env.close()

    return async_runner.run(go())
