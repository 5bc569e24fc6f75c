"""Shared pytest fixtures: one X server, one Chromium, one event loop per test session.

Load with ``pytest_plugins = ["guiagent.testing.fixtures"]`` (or ``-p guiagent.testing.fixtures``).

Async without pytest-asyncio: ``async_runner`` is a background thread running one event
loop for the whole session. Playwright objects are bound to the loop that made them, so
the shared Chromium (``playwright_browser``) and every env the factories build live on
that loop; tests drive them with ``async_runner.run(coro)``::

    def test_x(browser_env_factory, async_runner):
        env = browser_env_factory()
        frame = async_runner.run(env.observe())

With pytest-xdist each worker gets its own display, browser and loop (session scope is
per worker), and displays pick free numbers with ``-displayfd``.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from loguru import logger

from guiagent.envs.browser import CHROMIUM_ARGS, BrowserEnv, chromium_executable
from guiagent.envs.desktop import DesktopEnv
from guiagent.envs.display import XvfbDisplay

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]


class AsyncRunner:
    """An event loop on a daemon thread; ``run(coro)`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="guiagent-test-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "AsyncRunner.run() called from its own loop: await the coroutine instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        pending = asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop)
        try:
            pending.result(10)
        except Exception as exc:
            logger.debug("cancelling leftover tasks: {}", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
def async_runner() -> Iterator[AsyncRunner]:
    runner = AsyncRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def x_display() -> Iterator[XvfbDisplay]:
    """One Xvfb 1920x1080 for the session; DISPLAY/XAUTHORITY point at it while it runs."""
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "XAUTHORITY")}
    with XvfbDisplay((1920, 1080)) as display:
        os.environ.update(display.env)
        try:
            yield display
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# Test browsers draw text the same way on every machine: no hinting, no subpixel placement or
# LCD anti-aliasing, one colour profile (the fonts themselves: scripts/setup.sh installs them).
PINNED_RENDERING_ARGS = (
    "--font-render-hinting=none",
    "--disable-font-subpixel-positioning",
    "--disable-lcd-text",
    "--force-color-profile=srgb",
)


@pytest.fixture(scope="session")
def playwright_browser(async_runner: AsyncRunner) -> Iterator[Any]:
    """One headless Chromium for the session, living on ``async_runner``'s loop."""
    from playwright.async_api import async_playwright

    async def launch() -> tuple[Any, Any]:
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(
            headless=True,
            executable_path=chromium_executable(),
            args=[*CHROMIUM_ARGS, *PINNED_RENDERING_ARGS],
        )
        return pw, browser

    pw, browser = async_runner.run(launch())
    yield browser

    async def stop() -> None:
        try:
            await browser.close()
        finally:
            await pw.stop()

    async_runner.run(stop())


@pytest.fixture
def browser_env_factory(async_runner: AsyncRunner, playwright_browser: Any) -> Iterator[Any]:
    """``make(**BrowserEnv kwargs) -> started BrowserEnv`` in a new context of the shared browser."""
    envs: list[BrowserEnv] = []

    def make(**kwargs: Any) -> BrowserEnv:
        if not any(k in kwargs for k in ("cdp_url", "ws_endpoint", "browser")):
            kwargs["browser"] = playwright_browser
        env = BrowserEnv(**kwargs)
        envs.append(env)
        async_runner.run(env.start())
        return env

    yield make
    for env in envs:
        async_runner.run(env.close())


@pytest.fixture
def desktop_env(async_runner: AsyncRunner, x_display: XvfbDisplay) -> Iterator[DesktopEnv]:
    """A started DesktopEnv on the session Xvfb (all monitors, fail-safe off)."""
    env = DesktopEnv(display=x_display.display, failsafe=False)
    async_runner.run(env.start())
    yield env
    async_runner.run(env.close())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("static: " + format, *args)


class StaticServer:
    """An HTTP server on 127.0.0.1 serving a directory from a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="guiagent-static", daemon=True
        )
        self._thread.start()

    def url_for(self, path: str | Path) -> str:
        """URL of a file given relative to the served root (or absolute inside it)."""
        p = Path(path)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root)
        return f"{self.url}/{p.as_posix().lstrip('/')}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def static_server() -> Iterator[StaticServer]:
    """Serves the repository root (demo apps, tests/apps) over HTTP."""
    server = StaticServer(REPO_ROOT)
    yield server
    server.close()


class TkApp:
    """A Tk script running on the session display, with its mapped window id."""

    def __init__(self, proc: subprocess.Popen[bytes], title: str, window_id: str) -> None:
        self.proc = proc
        self.title = title
        self.window_id = window_id

    def geometry(self, env: dict[str, str] | None = None) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the window on the root, from xdotool."""
        out = subprocess.run(
            ["xdotool", "getwindowgeometry", "--shell", self.window_id],
            env=env or dict(os.environ),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        vals = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def launch_tk_app(
    script: str | Path,
    *args: str,
    title: str,
    env: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> TkApp:
    """Start ``python script *args`` and wait until a window named ``title`` is mapped."""
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--title", title],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{script} exited with code {proc.returncode}: {err[-2000:]}")
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            env=env,
            capture_output=True,
            text=True,
        )
        ids = found.stdout.split()
        if ids:
            return TkApp(proc, title, ids[-1])
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise TimeoutError(f"no window named {title!r} appeared within {timeout:g}s")


@pytest.fixture
def tk_app_factory(x_display: XvfbDisplay) -> Iterator[Any]:
    """``launch(script, *args, title=...) -> TkApp`` on the session display; stopped after the test."""
    apps: list[TkApp] = []

    def launch(script: str | Path, *args: str, title: str, timeout: float = 15.0) -> TkApp:
        app = launch_tk_app(script, *args, title=title, env=x_display.env, timeout=timeout)
        apps.append(app)
        return app

    yield launch
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def atspi_bus(x_display: XvfbDisplay) -> Iterator[Any]:
    """A D-Bus session bus with the AT-SPI bus for the session display, started only for
    the tests that ask for it; applications started with ``atspi_bus.env`` expose their
    accessibility tree on it."""
    from guiagent.envs.atspi import AccessibilityBus

    with AccessibilityBus(x_display.display) as bus:
        yield bus
