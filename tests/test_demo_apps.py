"""The demo apps really work: the web app in headless Chromium, the Tk app under Xvfb."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
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


# --- shared fixtures (local: the project's shared fixtures may not exist yet) -----------


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def webapp_url() -> Iterator[str]:
    handler = functools.partial(
        _QuietHandler, directory=str(WEBAPP_DIR)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser(loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    from playwright.async_api import async_playwright

    async def start() -> tuple[Any, Any]:
        pw = await async_playwright().start()
        executable = pw.chromium.executable_path
        kwargs: dict[str, Any] = {"headless": True, "args": CHROMIUM_ARGS}
        if not Path(executable).exists():
            kwargs["executable_path"] = "/usr/bin/chromium"
        return pw, await pw.chromium.launch(**kwargs)

    pw, browser = loop.run_until_complete(start())
    yield browser
    loop.run_until_complete(browser.close())
    loop.run_until_complete(pw.stop())


@pytest.fixture
def page(loop: asyncio.AbstractEventLoop, browser: Any, webapp_url: str) -> Iterator[Any]:
    async def open_page() -> Any:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(webapp_url)
        return page

    page = loop.run_until_complete(open_page())
    yield page
    loop.run_until_complete(page.context.close())


def _state(loop: asyncio.AbstractEventLoop, page: Any) -> dict[str, Any]:
    return loop.run_until_complete(page.evaluate("() => JSON.parse(JSON.stringify(window.demoState))"))


# --- web app ----------------------------------------------------------------------------


def test_login_wrong_password_then_right(loop: asyncio.AbstractEventLoop, page: Any) -> None:
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


def test_empty_username_is_refused(loop: asyncio.AbstractEventLoop, page: Any) -> None:
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


def test_todos_add_complete_delete(loop: asyncio.AbstractEventLoop, page: Any) -> None:
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


def test_settings_save_and_navigation(loop: asyncio.AbstractEventLoop, page: Any) -> None:
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


@pytest.fixture(scope="module")
def xvfb_display() -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as reader:
        number = reader.readline().strip()
    assert number, "Xvfb did not report a display number"
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


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
def tk_app(xvfb_display: str, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    state_file = tmp_path / "tk_state.json"
    env = {**os.environ, "DISPLAY": xvfb_display}
    proc = subprocess.Popen(
        [sys.executable, str(TKAPP_PATH), "--state-file", str(state_file)], env=env
    )
    try:
        _wait_for(lambda: (_read_state(state_file) or {}).get("ready"))
        yield state_file, env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _xdotool(env: dict[str, str], *args: str) -> None:
    subprocess.run(["xdotool", *args], env=env, check=True)


def test_tkapp_greets_and_subscribes_with_real_input(tk_app: tuple[Path, dict[str, str]]) -> None:
    state_file, env = tk_app
    state = _read_state(state_file)
    assert state is not None and state["geometry"].startswith("640x400")
    window = subprocess.run(
        ["xdotool", "search", "--name", "^guiagent demo$"], env=env, check=True,
        capture_output=True, text=True,
    ).stdout.split()[0]
    geometry = subprocess.run(
        ["xdotool", "getwindowgeometry", "--shell", window], env=env, check=True,
        capture_output=True, text=True,
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
    state = _wait_for(lambda: (_read_state(state_file) or {}).get("subscribed") and _read_state(state_file))
    _xdotool(env, "mousemove", "--sync", *_centre(widgets["add"]), "click", "1")
    state = _wait_for(lambda: (_read_state(state_file) or {}).get("items") and _read_state(state_file))
    assert state["items"] == ["Ada"]
    _xdotool(env, "mousemove", "--sync", *_centre(widgets["clear"]), "click", "1")
    state = _wait_for(lambda: (s := _read_state(state_file)) is not None and s["items"] == [] and s)
    assert state["subscribed"] is True and state["greeting"] == "Hello, Ada!"


def _centre(box: list[int]) -> tuple[str, str]:
    return (str(box[0] + box[2] // 2), str(box[1] + box[3] // 2))


def _greeted(path: Path) -> dict[str, Any] | None:
    state = _read_state(path)
    return state if state and state["greeting"] else None
