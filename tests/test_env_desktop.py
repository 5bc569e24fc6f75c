"""DesktopEnv against a real Xvfb with a real Tk window and real input events."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guiagent.core.actions import Click, Key, RightClick, Scroll, Type, Wait
from guiagent.core.env import Environment, Frame
from guiagent.core.geometry import Point, Rect
from guiagent.envs.desktop import DesktopEnv, _pyautogui_display, _same_display
from guiagent.envs.display import display_reachable

pytestmark = pytest.mark.desktop

APP = Path(__file__).parent / "apps" / "tk_button.py"
BUTTON = (255, 0, 200)
ENTRY = (224, 255, 224)
TEXT = (255, 255, 224)


def find_colour(frame: Frame, rgb: tuple[int, int, int]) -> Rect | None:
    """Bounding box (frame pixels) of the pixels of exactly this colour."""
    mask = np.all(frame.array() == np.array(rgb, dtype=np.uint8), axis=-1)
    ys, xs = np.nonzero(mask)
    if len(xs) < 20:
        return None
    return Rect.from_corners(
        float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    )


def wait_for_colour(
    runner: Any, env: DesktopEnv, rgb: tuple[int, int, int], timeout: float = 10
) -> tuple[Frame, Rect]:
    deadline = time.monotonic() + timeout
    while True:
        frame = runner.run(env.observe())
        box = find_colour(frame, rgb)
        if box is not None or time.monotonic() > deadline:
            assert box is not None, f"colour {rgb} never appeared on screen"
            return frame, box
        time.sleep(0.05)


def wait_state(path: Path, check: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if path.exists():
            state = json.loads(path.read_text(encoding="utf-8"))
            try:
                if check(state):
                    return state
            except KeyError:  # the app has not written that key yet (input still in flight)
                pass
        time.sleep(0.03)
    raise AssertionError(f"app state never matched; last state: {state}")


def click_colour(
    runner: Any, env: DesktopEnv, rgb: tuple[int, int, int], action: type = Click
) -> Point:
    frame, box = wait_for_colour(runner, env, rgb)
    screen = frame.transform.frame_to_screen(box.centre)
    runner.run(env.act(action(x=screen.x, y=screen.y)))
    return screen


@pytest.fixture
def tk_app(tk_app_factory: Any, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Any, Path]:
    state = tmp_path / "state.json"
    app = tk_app_factory(
        APP, str(state), "--geometry", "420x330+700+400", title=f"tk-{request.node.name}"
    )
    wait_state(state, lambda s: s["clicks"] == 0)
    return app, state


def test_env_satisfies_protocol_and_frame_geometry(
    desktop_env: DesktopEnv, async_runner: Any
) -> None:
    assert isinstance(desktop_env, Environment)
    frame = async_runner.run(desktop_env.observe())
    assert frame.surface == "desktop"
    assert frame.size.width == 1920 and frame.size.height == 1080
    assert frame.transform.scale == 1.0
    assert frame.meta["monitor"] == 0
    assert frame.meta["monitors"] == [
        {"left": 0, "top": 0, "width": 1920, "height": 1080, "primary": False}
    ]
    assert frame.meta["ui_scale"] == 1.0
    # pyautogui drives the first display a process imported it for; others use xdotool
    bound = _pyautogui_display()
    expected = (
        "pyautogui" if bound and _same_display(bound, desktop_env.display or "") else "xdotool"
    )
    assert desktop_env.input_backend == expected


def test_click_button_found_by_colour(
    desktop_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path]
) -> None:
    app, state_file = tk_app
    screen = click_colour(async_runner, desktop_env, BUTTON)
    x, y, w, h = app.geometry()
    assert x <= screen.x <= x + w and y <= screen.y <= y + h
    state = wait_state(state_file, lambda s: s["clicks"] == 1)
    assert state["label"] == "clicked 1"
    frame = async_runner.run(desktop_env.observe())
    assert frame.meta["window_title"] == app.title


def test_type_angle_brackets_and_unicode(
    desktop_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path]
) -> None:
    _, state_file = tk_app
    click_colour(async_runner, desktop_env, ENTRY)
    text = "a<b>c Zé€ ~|"
    async_runner.run(desktop_env.act(Type(text=text)))
    state = wait_state(state_file, lambda s: s["entry"] == text)
    assert state["entry"] == text


def test_type_newlines_into_multiline_text(
    desktop_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path]
) -> None:
    _, state_file = tk_app
    click_colour(async_runner, desktop_env, TEXT)
    async_runner.run(desktop_env.act(Type(text="one <1>\ntwo\tß")))
    state = wait_state(state_file, lambda s: s["text"] == "one <1>\ntwo\tß")
    assert state["entry"] == ""


def test_key_chords_and_right_click(
    desktop_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path]
) -> None:
    _, state_file = tk_app
    click_colour(async_runner, desktop_env, ENTRY)
    async_runner.run(desktop_env.act(Key(keys=["ctrl", "s"])))
    wait_state(state_file, lambda s: s["saved"] == 1)
    async_runner.run(desktop_env.act(Key(keys=["Escape"])))
    wait_state(state_file, lambda s: s["escapes"] == 1)
    click_colour(async_runner, desktop_env, BUTTON, RightClick)
    state = wait_state(state_file, lambda s: s["right_clicks"] == 1)
    assert state["clicks"] == 0 and state["saved"] == 1
    # scroll and wait go through without touching the app's state
    result = async_runner.run(desktop_env.act(Scroll(x=10, y=10, direction="down", amount=2)))
    assert result.ok
    assert async_runner.run(desktop_env.act(Wait(seconds=0.01))).ok


def test_xdotool_backend_clicks_and_types(
    async_runner: Any, x_display: Any, tk_app: tuple[Any, Path]
) -> None:
    _, state_file = tk_app
    env = DesktopEnv(display=x_display.display, failsafe=False, input_backend="xdotool")
    async_runner.run(env.start())
    try:
        click_colour(async_runner, env, BUTTON)
        wait_state(state_file, lambda s: s["clicks"] == 1)
        click_colour(async_runner, env, ENTRY)
        async_runner.run(env.act(Type(text="x<y>z")))
        wait_state(state_file, lambda s: s["entry"] == "x<y>z")
        async_runner.run(env.act(Key(keys=["ctrl", "s"])))
        assert wait_state(state_file, lambda s: s["saved"] == 1)["entry"] == "x<y>z"
    finally:
        async_runner.run(env.close())


def test_unknown_key_is_a_named_error(desktop_env: DesktopEnv, async_runner: Any) -> None:
    from guiagent.core.actions import InvalidToolCall

    with pytest.raises(InvalidToolCall, match="unknown key"):
        async_runner.run(desktop_env.act(Key(keys=["ctrl", "nosuchkey"])))


def test_bad_monitor_is_rejected(async_runner: Any, x_display: Any) -> None:
    env = DesktopEnv(display=x_display.display, monitor=5)
    with pytest.raises(ValueError, match="monitor 5 does not exist"):
        async_runner.run(env.start())
    with pytest.raises(ValueError, match="monitor must be"):
        DesktopEnv(monitor="left")


def test_starts_and_stops_own_xvfb_without_display(
    async_runner: Any, x_display: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY")
    env = DesktopEnv()
    async_runner.run(env.start())
    try:
        own, auth = env.display, env.xauthority
        assert own and own != x_display.display
        assert env.failsafe is False  # own Xvfb: no human to slam the pointer into a corner
        frame = async_runner.run(env.observe())
        assert (frame.size.width, frame.size.height) == (1920, 1080)
        assert frame.meta["display"] == own
    finally:
        async_runner.run(env.close())
    assert not display_reachable(own)
    assert os.environ.get("DISPLAY") is None
    assert os.environ.get("XAUTHORITY") != auth  # no pointer left at the deleted cookie file


def test_xvfb_display_lifecycle_and_access_control() -> None:
    import subprocess

    from guiagent.envs.display import DisplayError, XvfbDisplay

    with XvfbDisplay((640, 480), secure=True) as server:

        def xdpyinfo(xauthority: str) -> int:
            env = {**os.environ, "DISPLAY": server.display, "XAUTHORITY": xauthority}
            return subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode

        assert xdpyinfo(server.xauthority) == 0
        assert xdpyinfo("/nonexistent") != 0  # the cookie is required
        display, auth = server.display, server.xauthority
    assert not display_reachable(display)
    assert not os.path.exists(auth)
    with pytest.raises(DisplayError, match="size must be positive"):
        XvfbDisplay((0, 480))


def test_dead_x_server_raises_surface_gone(async_runner: Any) -> None:
    from guiagent.core.env import SurfaceGoneError
    from guiagent.envs.display import XvfbDisplay

    server = XvfbDisplay((640, 480)).start()
    env = DesktopEnv(display=server.display, failsafe=False, input_backend="xdotool")
    async_runner.run(env.start())
    try:
        assert async_runner.run(env.observe()).size.width == 640
        server.stop()
        with pytest.raises(SurfaceGoneError):
            async_runner.run(env.observe())
        with pytest.raises(SurfaceGoneError):
            async_runner.run(env.act(Click(x=10, y=10)))
    finally:
        async_runner.run(env.close())
        server.stop()


_QUIET_XAUTH_CHILD = """
import asyncio, sys
from guiagent.envs.desktop import DesktopEnv

async def main():
    env = DesktopEnv(display=sys.argv[1], failsafe=False, input_backend="xdotool")
    await env.start()
    try:
        await env.observe()
        print("xlib connected:", env._xlib is not None)
    finally:
        await env.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("home_file", ["missing", "empty"])
def test_no_xauthority_warning_on_stdout(x_display: Any, tmp_path: Path, home_file: str) -> None:
    """With no $XAUTHORITY and no (or an empty) ~/.Xauthority, the env's own Xlib connection
    used to print python-xlib's "no xauthority details" warning on stdout, into a CLI's
    output; now the file gets a placeholder entry that libX11 also reads."""
    import subprocess
    import sys

    from guiagent.envs.display import ensure_readable_xauthority

    home_auth = tmp_path / ".Xauthority"
    if home_file == "empty":
        home_auth.touch()
    env = {k: v for k, v in os.environ.items() if k != "XAUTHORITY"}
    env |= {"HOME": str(tmp_path), "DISPLAY": x_display.display}
    proc = subprocess.run(
        [sys.executable, "-c", _QUIET_XAUTH_CHILD, x_display.display],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "xlib connected: True\n"  # and printed nothing else
    if home_file == "missing":
        assert home_auth.stat().st_mode & 0o777 == 0o600
    listed = subprocess.run(
        ["xauth", "-f", str(home_auth), "list"], capture_output=True, text=True, check=True
    )
    assert "guiagent-placeholder-host" in listed.stdout  # a well-formed entry, for no host
    size = home_auth.stat().st_size
    ensure_readable_xauthority(str(home_auth))  # a file with entries is left as is
    assert home_auth.stat().st_size == size
