"""The demo apps really work: the web app in headless Chromium, the Tk app under Xvfb."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from guiagent.demo import TKAPP_PATH, WEBAPP_DIR

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
]


# Shared fixtures (guiagent.testing.fixtures, loaded by tests/conftest.py): one event loop
# thread (async_runner), one Chromium, one Xvfb and one static server per session.


class _Loop:
    """Adapter so the tests read ``loop.run_until_complete(coro)`` on the shared runner."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def run_until_complete(self, coro: Any) -> Any:
        return self._runner.run(coro)


@pytest.fixture
def loop(async_runner: Any) -> _Loop:
    return _Loop(async_runner)


@pytest.fixture
def page(loop: _Loop, playwright_browser: Any, static_server: Any) -> Iterator[Any]:
    url = static_server.url_for(WEBAPP_DIR / "index.html")

    async def open_page() -> Any:
        context = await playwright_browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(url)
        return page

    page = loop.run_until_complete(open_page())
    yield page
    loop.run_until_complete(page.context.close())


def _state(loop: _Loop, page: Any) -> dict[str, Any]:
    return loop.run_until_complete(
        page.evaluate("() => JSON.parse(JSON.stringify(window.demoState))")
    )


# --- web app ----------------------------------------------------------------------------


def test_login_wrong_password_then_right(loop: _Loop, page: Any) -> None:
    async def scenario() -> tuple[str, str, bool]:
        await page.get_by_label("Username").fill("alice")
        await page.get_by_label("Password").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        bad = await page.locator("#login-message").inner_text()
        await page.get_by_label("Password").fill("secret")
        await page.get_by_role("button", name="Sign in").click()
        welcome = await page.locator("#welcome").inner_text()
        nav_visible = await page.get_by_role("button", name="Sign out").is_visible()
        return bad, welcome, nav_visible

    bad, welcome, nav_visible = loop.run_until_complete(scenario())
    assert bad == "Invalid password"
    assert welcome == "Welcome, alice"
    assert nav_visible
    state = _state(loop, page)
    assert state["user"] == "alice"
    assert state["view"] == "todos"
    assert loop.run_until_complete(page.locator("#password").get_attribute("type")) == "password"


def test_empty_username_is_refused(loop: _Loop, page: Any) -> None:
    async def scenario() -> str:
        await page.get_by_label("Password").fill("secret")
        await page.get_by_role("button", name="Sign in").click()
        return await page.locator("#login-message").inner_text()

    assert loop.run_until_complete(scenario()) == "Enter a username"
    assert _state(loop, page)["user"] is None


async def _login(page: Any, name: str = "bob") -> None:
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill("secret")
    await page.get_by_role("button", name="Sign in").click()


def test_todos_add_complete_delete(loop: _Loop, page: Any) -> None:
    async def scenario() -> list[str]:
        await _login(page)
        counters = []
        for text in ("Buy milk", "Write report", "Call Anna"):
            await page.get_by_label("New item").fill(text)
            await page.get_by_role("button", name="Add", exact=True).click()
        counters.append(await page.locator("#todo-counter").inner_text())
        await page.locator("#complete-2").click()
        counters.append(await page.locator("#todo-counter").inner_text())
        await page.get_by_role("button", name="Delete Call Anna").click()
        counters.append(await page.locator("#todo-counter").inner_text())
        return counters

    counters = loop.run_until_complete(scenario())
    assert counters == ["3 items left", "2 items left", "1 item left"]
    state = _state(loop, page)
    assert [(i["text"], i["done"]) for i in state["items"]] == [
        ("Buy milk", False),
        ("Write report", True),
    ]
    json.dumps(state)  # JSON-serialisable


def test_settings_save_and_navigation(loop: _Loop, page: Any) -> None:
    async def scenario() -> tuple[str, bool, bool]:
        await _login(page)
        await page.get_by_role("button", name="Settings").click()
        await page.get_by_label("Email notifications").check()
        await page.get_by_label("Dark mode").check()
        await page.get_by_label("Language").select_option("French")
        await page.get_by_role("button", name="Save settings").click()
        message = await page.locator("#settings-message").inner_text()
        dark = await page.evaluate("() => document.body.classList.contains('dark')")
        await page.get_by_role("button", name="Todos").click()
        todos_visible = await page.locator("#view-todos").is_visible()
        return message, dark, todos_visible

    message, dark, todos_visible = loop.run_until_complete(scenario())
    assert message == "Settings saved"
    assert dark and todos_visible
    state = _state(loop, page)
    assert state["savedSettings"] == {
        "emailNotifications": True,
        "darkMode": True,
        "language": "French",
    }

    async def sign_out() -> bool:
        await page.get_by_role("button", name="Sign out").click()
        return await page.locator("#view-login").is_visible()

    assert loop.run_until_complete(sign_out())
    assert _state(loop, page)["user"] is None


# --- Tk app -----------------------------------------------------------------------------


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.fixture
def tk_app(x_display: Any, tk_app_factory: Any, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    state_file = tmp_path / "tk_state.json"
    tk_app_factory(TKAPP_PATH, "--state-file", str(state_file), title="guiagent demo")
    _wait_for(lambda: (_read_state(state_file) or {}).get("ready"))
    return state_file, {**os.environ, **x_display.env}


def _xdotool(env: dict[str, str], *args: str) -> None:
    subprocess.run(["xdotool", *args], env=env, check=True)


def test_tkapp_greets_and_subscribes_with_real_input(tk_app: tuple[Path, dict[str, str]]) -> None:
    state_file, env = tk_app
    state = _read_state(state_file)
    assert state is not None and state["geometry"].startswith("640x400")
    window = subprocess.run(
        ["xdotool", "search", "--name", "^guiagent demo$"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    geometry = subprocess.run(
        ["xdotool", "getwindowgeometry", "--shell", window],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = dict(line.split("=", 1) for line in geometry.split())
    assert (int(values["X"]), int(values["Y"])) == (100, 100)

    widgets = state["widgets"]
    assert set(widgets) >= {"name_entry", "greet", "greeting", "subscribe", "add", "clear"}

    _xdotool(env, "mousemove", "--sync", *_centre(widgets["name_entry"]), "click", "1")
    _xdotool(env, "type", "--delay", "5", "Ada")
    _wait_for(lambda: (_read_state(state_file) or {}).get("name") == "Ada")
    _xdotool(env, "mousemove", "--sync", *_centre(widgets["greet"]), "click", "1")
    state = _wait_for(lambda: _greeted(state_file))
    assert state["greeting"] == "Hello, Ada!"
    assert state["subscribed"] is False

    _xdotool(env, "mousemove", "--sync", *_centre(widgets["subscribe"]), "click", "1")
    state = _wait_for(
        lambda: (_read_state(state_file) or {}).get("subscribed") and _read_state(state_file)
    )
    _xdotool(env, "mousemove", "--sync", *_centre(widgets["add"]), "click", "1")
    state = _wait_for(
        lambda: (_read_state(state_file) or {}).get("items") and _read_state(state_file)
    )
    assert state["items"] == ["Ada"]
    _xdotool(env, "mousemove", "--sync", *_centre(widgets["clear"]), "click", "1")
    state = _wait_for(lambda: (s := _read_state(state_file)) is not None and s["items"] == [] and s)
    assert state["subscribed"] is True and state["greeting"] == "Hello, Ada!"


def _centre(box: list[int]) -> tuple[str, str]:
    return (str(box[0] + box[2] // 2), str(box[1] + box[3] // 2))


def _greeted(path: Path) -> dict[str, Any] | None:
    state = _read_state(path)
    return state if state and state["greeting"] else None


def _settled_grab(grabber: Any, region: dict[str, int], timeout: float = 3.0) -> Any:
    """The region once two grabs 50 ms apart are equal: the window has finished drawing."""
    shot = grabber.grab(region)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        again = grabber.grab(region)
        if again.rgb == shot.rgb:
            return again
        shot = again
    raise AssertionError(f"the region {region} kept changing for {timeout:g}s")


def test_tkapp_is_readable_and_clickable_by_the_local_grounder(
    tk_app: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The full desktop path without a model: mss capture -> OCR grounding -> real click."""
    import mss
    from PIL import Image

    from guiagent.core.env import Frame
    from guiagent.core.geometry import Size, transform_for_monitor
    from guiagent.grounding.local import LocalGrounder, Target

    state_file, env = tk_app
    region = {"left": 100, "top": 100, "width": 640, "height": 400}
    with mss.MSS(display=env["DISPLAY"]) as grabber:
        shot = _settled_grab(grabber, region)
    image = Image.frombytes("RGB", shot.size, shot.rgb)
    frame = Frame(
        image=image,
        transform=transform_for_monitor(100, 100, 640, 400, Size(*shot.size)),
        surface="desktop",
    )
    grounder = LocalGrounder()
    texts = [line.text for line in grounder.read_text(frame)]
    assert {"Name", "Greet", "Subscribe", "Add", "Clear"} <= set(texts)
    widgets = _read_state(state_file)["widgets"]  # type: ignore[index]
    x, y, w, h = widgets["greet"]
    greet = grounder.ground(frame, "Greet")
    screen_point = frame.transform.frame_to_screen(greet.point)
    assert x <= screen_point.x <= x + w and y <= screen_point.y <= y + h
    entry = grounder.ground(frame, Target(text="Name", role="input"))  # the field, not the label
    entry_point = frame.transform.frame_to_screen(entry.point)
    ex, ey, ew, eh = widgets["name_entry"]
    if not (ex <= entry_point.x <= ex + ew and ey <= entry_point.y <= ey + eh):
        image.save(tmp_path / "frame.png")
        windows = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", "."],
            env=env,
            capture_output=True,
            text=True,
        ).stdout.split()
        raise AssertionError(
            f"the Name field was grounded at {entry_point}, outside the entry {widgets['name_entry']}"
            f" (frame: {tmp_path / 'frame.png'}; visible windows: {windows})"
        )
    _xdotool(
        env,
        "mousemove",
        "--sync",
        str(round(entry_point.x)),
        str(round(entry_point.y)),
        "click",
        "1",
    )
    _xdotool(env, "type", "--delay", "5", "Grace")
    _xdotool(
        env,
        "mousemove",
        "--sync",
        str(round(screen_point.x)),
        str(round(screen_point.y)),
        "click",
        "1",
    )
    state = _wait_for(lambda: _greeted(state_file))
    assert state["greeting"] == "Hello, Grace!"
    assert entry.box.right < greet.box.left  # the label sits left of the button
