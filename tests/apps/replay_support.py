"""Test support for recording/replay/report tests: a real headless Chromium, a page env, a recorded run.

Uses guiagent.envs.browser.BrowserEnv when it exists; otherwise a minimal real Playwright
env with the same seam (observe/act/dom_elements/close). Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from playwright.async_api import Browser, Page, async_playwright

from guiagent.actions import BaseAction, Click, Key, Scroll, Type, Wait
from guiagent.envs.base import ActResult, Frame
from guiagent.geometry import CoordSpace, Point, Size, resolve_point, transform_for_page
from guiagent.record import Recorder, RunHeader, StepRecord
from guiagent.record.evidence import collect_evidence, dom_at_point

PAGE = Path(__file__).with_name("replay_form.html")
T = TypeVar("T")

_DOM_JS = """() => Array.from(document.querySelectorAll('input,button,a,li,div,[role]')).map(e => {
  const r = e.getBoundingClientRect();
  return {tag: e.tagName.toLowerCase(), id: e.id || null, text: (e.innerText || e.value || '').trim().slice(0, 80),
          role: e.getAttribute('role') || (e.tagName === 'BUTTON' ? 'button' : null), type: e.type || null,
          box: {x: r.x, y: r.y, width: r.width, height: r.height}};
}).filter(e => e.box.width > 0 && e.box.height > 0)"""

_KEYS = {"enter": "Enter", "esc": "Escape", "tab": "Tab", "ctrl": "Control", "shift": "Shift", "alt": "Alt", "backspace": "Backspace"}


class LoopThread:
    """A background event loop; tests call .run(coro)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def chromium_executable() -> str | None:
    for root in (Path.home() / ".cache/ms-playwright",):
        if root.is_dir() and any(root.glob("chromium-*")):
            return None  # Playwright's own
    return shutil.which("chromium") or "/usr/bin/chromium"


async def launch_browser() -> tuple[Any, Browser]:
    pw = await async_playwright().start()
    exe = chromium_executable()
    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]
    browser = await pw.chromium.launch(headless=True, executable_path=exe, args=args)
    return pw, browser


class PageEnv:
    """Minimal real Playwright environment (fallback until the shared BrowserEnv is used)."""

    surface = "browser"

    def __init__(self, page: Page) -> None:
        self.page = page

    @classmethod
    async def open(cls, browser: Browser, url: str, viewport: tuple[int, int] = (800, 600)) -> PageEnv:
        context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = await context.new_page()
        await page.goto(url)
        return cls(page)

    async def observe(self) -> Frame:
        data = await self.page.screenshot(type="png")
        image = Image.open(io.BytesIO(data)).convert("RGB")
        info = await self.page.evaluate("() => [innerWidth, innerHeight, devicePixelRatio, location.href, document.title]")
        transform = transform_for_page(Size(info[0], info[1]), info[2], Size(image.width, image.height))
        return Frame(image=image, transform=transform, surface="browser", meta={"url": info[3], "title": info[4]})

    async def act(self, action: BaseAction) -> ActResult:
        mouse, keyboard = self.page.mouse, self.page.keyboard
        if isinstance(action, Click):
            await mouse.click(action.x, action.y)
        elif isinstance(action, Type):
            await keyboard.type(action.text)
        elif isinstance(action, Key):
            await keyboard.press("+".join(_KEYS.get(k, k) for k in action.keys))
        elif isinstance(action, Scroll):
            if action.x is not None:
                await mouse.move(action.x, action.y)
            dy = {"down": 100, "up": -100}.get(action.direction, 0) * action.amount
            dx = {"right": 100, "left": -100}.get(action.direction, 0) * action.amount
            await mouse.wheel(dx, dy)
        elif isinstance(action, Wait):
            await asyncio.sleep(action.seconds)
        else:
            return ActResult(ok=False, detail=f"unsupported action {action.name}")
        return ActResult()

    async def dom_elements(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate(_DOM_JS))

    async def close(self) -> None:
        await self.page.context.close()


async def open_env(browser: Browser, url: str) -> Any:
    try:
        from guiagent.envs.browser import BrowserEnv  # type: ignore[import-not-found]
    except ImportError:
        return await PageEnv.open(browser, url)
    env = BrowserEnv(start_url=url, browser=browser, viewport=(800, 600))
    await env.__aenter__()
    return env


def page_url(variant: str = "") -> str:
    return PAGE.as_uri() + (f"?variant={variant}" if variant else "")


async def element_centre(env: Any, selector: str) -> tuple[float, float]:
    box = await env.page.locator(selector).bounding_box()
    return (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


async def record_step(
    env: Any, recorder: Recorder, index: int, action: BaseAction, variables: dict[str, Any] | None = None
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
        evidence = collect_evidence(recorder, frame.image, (trail_objs[0].frame.x, trail_objs[0].frame.y), dom=dom)
    step = StepRecord(
        index=index,
        started_at=t0,
        frame=frame_path,
        frame_size=[frame.image.width, frame.image.height],
        sent_size=[frame.image.width, frame.image.height],
        meta={**frame.meta, "transform": {"origin": [0.0, 0.0], "scale": frame.transform.scale}},
        request={"messages": 2, "prompt_chars": 120, "image_tokens": 504, "tools": ["click", "type"]},
        reply={"content": "", "reasoning": f"I will {action.name} now.", "tool_calls": [{"name": action.name, "arguments": action.arguments()}]},
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


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
