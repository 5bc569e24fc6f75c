"""BrowserEnv against real headless Chromium: clicks, typing, HiDPI/zoom geometry, CDP, run-server, crashes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from guiagent.core.actions import Click, DoubleClick, Drag, Key, Move, Scroll, Type
from guiagent.core.env import Environment, SurfaceGoneError
from guiagent.core.geometry import CoordSpace, Point, Size, resolve_point, screen_to_model
from guiagent.envs.browser import BrowserEnv, chromium_executable, playwright_key

pytestmark = pytest.mark.browser

PAGE = "tests/apps/click_grid.html"


def text(runner: Any, env: BrowserEnv, selector: str) -> str:
    return runner.run(env.page.text_content(selector)) or ""


def centre_of(elements: list[dict[str, Any]], element_id: str) -> Point:
    box = next(e["box"] for e in elements if e["id"] == element_id)
    return Point(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_click_and_type_change_the_dom(
    browser_env_factory: Any, async_runner: Any, static_server: Any
) -> None:
    env = browser_env_factory(start_url=static_server.url_for(PAGE))
    assert isinstance(env, Environment)
    frame = async_runner.run(env.observe())
    assert frame.surface == "browser"
    assert frame.meta["title"] == "click grid"
    assert (frame.size.width, frame.size.height) == (1280, 800)
    elements = async_runner.run(env.dom_elements())
    name_box = centre_of(elements, "name")
    async_runner.run(env.act(Click(x=name_box.x, y=name_box.y)))
    async_runner.run(env.act(Type(text="Ada <Lovelace> é")))
    go = centre_of(elements, "go")
    async_runner.run(env.act(Click(x=go.x, y=go.y)))
    assert text(async_runner, env, "#result") == "hello Ada <Lovelace> é"
    async_runner.run(env.act(Key(keys=["ctrl", "s"])))
    async_runner.run(env.act(Key(keys=["esc"])))
    assert text(async_runner, env, "#keys").endswith("C-Control C-s Escape ")


def test_dom_elements_hide_password_values_and_snapshot(
    browser_env_factory: Any, async_runner: Any, static_server: Any
) -> None:
    env = browser_env_factory(start_url=static_server.url_for(PAGE))
    elements = async_runner.run(env.dom_elements())
    pw = next(e for e in elements if e["id"] == "pw")
    assert pw["password"] is True and pw["value"] is None and pw["type"] == "password"
    go = next(e for e in elements if e["id"] == "go")
    assert go["tag"] == "button" and go["text"] == "Go" and go["interactive"]
    assert not any(e["id"] == "far" for e in elements)  # below the fold
    assert any(e["id"] == "far" for e in async_runner.run(env.dom_elements(in_viewport=False)))
    snapshot = async_runner.run(env.accessibility_snapshot())
    assert 'button "Go"' in snapshot and 'button "b-3-4"' in snapshot


@pytest.mark.parametrize("zoom", [False, True])
def test_hidpi_and_zoom_click_lands_on_small_target(
    browser_env_factory: Any, async_runner: Any, static_server: Any, zoom: bool
) -> None:
    url = static_server.url_for(PAGE) + ("#zoom" if zoom else "")
    env = browser_env_factory(start_url=url, viewport=(900, 600), device_scale_factor=2)
    async_runner.run(
        env.page.evaluate("document.getElementById('b-13-21').style.background = 'rgb(255, 0, 0)'")
    )
    frame = async_runner.run(env.observe())
    assert (frame.size.width, frame.size.height) == (1800, 1200)
    assert frame.meta["device_pixel_ratio"] == 2 and frame.transform.scale == 2
    target = centre_of(async_runner.run(env.dom_elements()), "b-13-21")
    # the screenshot shows the target where the transform says it is
    fx, fy = frame.transform.screen_to_frame(target).rounded()
    assert frame.image.getpixel((fx, fy)) == (255, 0, 0)
    # a model answering in norm1000 on a downscaled image ends up on the target
    sent = Size(1000, 667)
    model_point = screen_to_model(target, CoordSpace.NORM1000, sent, frame.transform)
    trail = resolve_point(model_point, CoordSpace.NORM1000, sent, frame.transform)
    assert trail.screen.distance(target) < 1.5
    async_runner.run(env.act(Click(x=trail.screen.x, y=trail.screen.y)))
    assert text(async_runner, env, "#result") == "b-13-21"


def test_full_page_frame_scrolls_before_clicking_below_the_fold(
    browser_env_factory: Any, async_runner: Any, static_server: Any
) -> None:
    env = browser_env_factory(
        start_url=static_server.url_for(PAGE), viewport=(800, 600), full_page=True
    )
    frame = async_runner.run(env.observe())
    assert frame.size.height > 2400
    far = centre_of(async_runner.run(env.dom_elements(in_viewport=False)), "far")
    assert far.y > 600
    screen = frame.transform.frame_to_screen(Point(far.x, far.y))  # scale 1, origin 0: same numbers
    async_runner.run(env.act(DoubleClick(x=screen.x, y=screen.y)))
    assert text(async_runner, env, "#result") == "far-dbl"
    scrolled = async_runner.run(env.observe())
    assert scrolled.transform.origin.y < 0  # the document now starts above the viewport
    again = scrolled.transform.frame_to_screen(Point(far.x, far.y))
    assert 0 <= again.y < 600


def test_scroll_drag_move(browser_env_factory: Any, async_runner: Any, static_server: Any) -> None:
    env = browser_env_factory(start_url=static_server.url_for(PAGE), viewport=(800, 600))
    async_runner.run(env.act(Scroll(x=400, y=300, direction="down", amount=3)))
    deadline = time.monotonic() + 5
    while async_runner.run(env.page_state())["scrollY"] != 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert async_runner.run(env.page_state())["scrollY"] == 300
    async_runner.run(
        env.page.evaluate(
            "window.__moves = 0; document.addEventListener('mousemove', () => window.__moves++);"
            "document.addEventListener('mouseup', e => window.__up = [e.clientX, e.clientY]);"
        )
    )
    async_runner.run(env.act(Move(x=10, y=10)))
    async_runner.run(env.act(Drag(x1=50, y1=50, x2=250, y2=150)))
    assert async_runner.run(env.page.evaluate("window.__up")) == [250, 150]
    assert async_runner.run(env.page.evaluate("window.__moves")) >= 8


def test_key_names_and_bad_keys() -> None:
    from guiagent.core.actions import InvalidToolCall

    assert [playwright_key(k) for k in ["ctrl", "enter", "esc", "f5", "a", "pagedown"]] == [
        "Control",
        "Enter",
        "Escape",
        "F5",
        "a",
        "PageDown",
    ]
    with pytest.raises(InvalidToolCall, match="unknown key"):
        playwright_key("hyper")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a process and everything it started (run-server's node child ignores SIGTERM)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(5)


@pytest.fixture
def cdp_chromium() -> Iterator[str]:
    """A headless Chromium we start ourselves with a DevTools port; yields its ws URL."""
    profile = tempfile.mkdtemp(prefix="guiagent-cdp-")
    proc = subprocess.Popen(
        [
            "/usr/bin/chromium",
            "--headless",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-gpu",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        match = re.search(r"DevTools listening on (ws://\S+)", line)
        if match:
            url = match.group(1)
    assert url, "chromium did not report its DevTools endpoint"
    yield url
    _stop_group(proc)


def test_cdp_attach_acts_on_existing_page(
    async_runner: Any, static_server: Any, cdp_chromium: str
) -> None:
    env = BrowserEnv(cdp_url=cdp_chromium, start_url=static_server.url_for(PAGE))
    async_runner.run(env.start())
    try:
        elements = async_runner.run(env.dom_elements())
        target = centre_of(elements, "b-2-5")
        frame = async_runner.run(env.observe())
        assert frame.meta["url"].endswith("click_grid.html")
        async_runner.run(env.act(Click(x=target.x, y=target.y)))
        assert text(async_runner, env, "#result") == "b-2-5"
    finally:
        async_runner.run(env.close())


@pytest.fixture
def run_servers() -> Iterator[list[str]]:
    procs, urls = [], []
    for _ in range(2):
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "playwright",
                "run-server",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--unsafe",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Listening on ws://" in line, line
        urls.append(f"ws://127.0.0.1:{port}/")
    yield urls
    for proc in procs:
        _stop_group(proc)


def test_two_envs_on_two_run_servers(
    async_runner: Any, static_server: Any, run_servers: list[str]
) -> None:
    exe = chromium_executable()
    assert exe is not None
    envs = [
        BrowserEnv(ws_endpoint=url, executable_path=exe, start_url=static_server.url_for(PAGE))
        for url in run_servers
    ]
    try:
        for env in envs:
            async_runner.run(env.start())
        for i, env in enumerate(envs):
            target = centre_of(async_runner.run(env.dom_elements()), f"b-{i}-{i + 3}")
            async_runner.run(env.act(Click(x=target.x, y=target.y)))
        assert [text(async_runner, env, "#result") for env in envs] == ["b-0-3", "b-1-4"]
    finally:
        for env in envs:
            async_runner.run(env.close())


def _pids_with(tag: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if tag.encode() in args and not any(a.startswith(b"--type=") for a in args):
            pids.append(int(entry))
    return pids


def test_killed_browser_raises_surface_gone(async_runner: Any, static_server: Any) -> None:
    tag = f"--guiagent-test-tag={uuid.uuid4().hex}"
    env = BrowserEnv(start_url=static_server.url_for(PAGE), extra_args=[tag])
    async_runner.run(env.start())
    try:
        async_runner.run(env.observe())
        pids = _pids_with(tag)
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(SurfaceGoneError, match="gone"):
            for _ in range(50):  # the disconnect is noticed within a few round trips
                async_runner.run(env.act(Click(x=5, y=5)), timeout=30)
                async_runner.run(env.observe(), timeout=30)
                time.sleep(0.05)
    finally:
        async_runner.run(env.close())


def test_closed_page_raises_surface_gone(browser_env_factory: Any, async_runner: Any) -> None:
    env = browser_env_factory()
    async_runner.run(env.page.close())
    with pytest.raises(SurfaceGoneError, match="closed"):
        async_runner.run(env.observe())


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        ("Later", "timer done"),
        ("Fetch", "fetch ok done"),
        ("Fade", "transition done"),
        ("Frames", "frames done"),
    ],
)
def test_the_next_step_sees_a_change_that_comes_300_ms_after_the_click(
    button: str, expected: str, browser_env_factory: Any, async_runner: Any, static_server: Any
) -> None:
    """Event-driven settle: a change 300 ms after a click (a timer, a fetch answered late,
    a CSS transition), or drawn two frames after it, is on the frame the next scenario
    step starts from."""
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    env = browser_env_factory(start_url=static_server.url_for("tests/apps/late_changes.html"))

    async def slow_answer(route: Any) -> None:
        await asyncio.sleep(0.3)
        await route.fulfill(status=200, body="ok", content_type="text/plain")

    async def go() -> tuple[Any, str, str, str]:
        await env.page.route("**/slow-answer", slow_answer)
        ui = UI(env, LocalGrounder())
        await ui.click({"text": button, "role": "button"})
        frame, _ = await ui.settled()  # what the next step starts from
        shown = await env.page.text_content("#out") or ""
        colour = await env.page.evaluate(
            "() => getComputedStyle(document.getElementById('panel')).backgroundColor"
        )
        box = await env.page.evaluate(
            "() => { const r = document.getElementById('panel').getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; }"
        )
        point = frame.transform.screen_to_frame(Point(box[0], box[1]))
        return frame.image.getpixel((int(point.x), int(point.y))), shown, colour, button

    pixel, shown, colour, _ = async_runner.run(go())
    assert shown == expected
    assert colour == "rgb(0, 192, 0)"
    assert pixel == (0, 192, 0), f"the settled frame shows the panel as {pixel}, not green"


def test_typing_into_the_focused_field_does_not_click_it_again(
    browser_env_factory: Any, async_runner: Any
) -> None:
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    page = (
        "data:text/html,<label for=n>Name</label><input id=n placeholder=Name>"
        "<p id=downs>0</p><script>let d=0;document.getElementById('n').addEventListener("
        "'mousedown',()=>{document.getElementById('downs').textContent=++d})</script>"
    )
    env = browser_env_factory(start_url=page)

    async def go() -> tuple[str, str]:
        ui = UI(env, LocalGrounder())
        await ui.type("ab", into="Name")
        await ui.type("cd", into="Name")  # the field has the focus: typed, not clicked
        return await env.page.input_value("#n"), await env.page.text_content("#downs") or ""

    value, downs = async_runner.run(go())
    assert value == "abcd"
    assert downs == "1"
