"""Desktop settling on grayscale thumbnails of mss grabs, woken by X DAMAGE events (Xvfb has
the extension) or polling without it: a window that changes 300 ms after a click is seen
changed once the still window is longer than that, a still screen is one grab, and drawing
that leaves the pixels under the threshold (a tiny blinking square) does not hold it up."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from guiagent.core.actions import Click
from guiagent.core.change import bgra_thumbnail, settle_env, thumbnail
from guiagent.core.env import Frame, StillSource
from guiagent.core.geometry import Rect
from guiagent.envs.desktop_still import ScreenStill

LATE = """
import argparse, tkinter as tk
p = argparse.ArgumentParser(); p.add_argument("--title"); a = p.parse_args()
root = tk.Tk(); root.title(a.title); root.geometry("400x200+500+300"); root.configure(bg="white")
label = tk.Label(root, text="before", bg="white", font=("DejaVu Sans", 40))
label.place(x=20, y=60)
root.bind("<Button-1>", lambda e: root.after(300, lambda: label.configure(text="AFTER!", bg="black", fg="white")))
root.mainloop()
"""

BLINK = """
import argparse, tkinter as tk
p = argparse.ArgumentParser(); p.add_argument("--title"); a = p.parse_args()
root = tk.Tk(); root.title(a.title); root.geometry("200x100+100+100"); root.configure(bg="white")
c = tk.Canvas(root, width=12, height=12, bg="white", highlightthickness=0); c.place(x=10, y=10)
r = c.create_rectangle(0, 0, 12, 12, fill="black"); state = [0]
def tick():
    state[0] ^= 1; c.itemconfigure(r, fill="black" if state[0] else "white"); root.after(30, tick)
tick(); root.mainloop()
"""


def _polling(env: Any) -> None:
    """Make the env settle by polling thumbnails, as on a server without DAMAGE."""
    env._still = ScreenStill(env._grab_raw, None)


@pytest.mark.parametrize("how", ["xdamage", "grabs"])
def test_a_window_changing_300ms_after_a_click_is_seen_changed(
    how: str, tmp_path: Any, tk_app_factory: Any, desktop_env: Any, async_runner: Any
) -> None:
    script = tmp_path / "late.py"
    script.write_text(LATE)
    app = tk_app_factory(script, title=f"Late {how}")
    if how == "grabs":
        _polling(desktop_env)
    assert isinstance(desktop_env, StillSource)
    first = async_runner.run(settle_env(desktop_env, desktop_env.observe, quiet_ms=250))
    assert first.settled and first.how == how
    wx, wy, ww, wh = (int(v) for v in app.geometry())
    box = (wx, wy, wx + ww, wy + wh)
    before = np.asarray(first.frame.image.crop(box).convert("L"))
    assert before.min() < 100 < before.max()  # the window and its text are on screen
    async_runner.run(desktop_env.act(Click(x=wx + 200, y=wy + 30)))
    # the still window is the agent's settle_quiet_ms: longer than the app's delay
    after = async_runner.run(settle_env(desktop_env, desktop_env.observe, quiet_ms=450))
    assert after.settled and after.how == how
    changed = np.asarray(after.frame.image.crop(box).convert("L"))
    assert (changed < 50).mean() > 0.1 + (before < 50).mean()  # the label went black
    if how == "grabs":
        desktop_env._still = None


def test_a_still_screen_is_one_grab_with_damage_and_several_without(
    desktop_env: Any, async_runner: Any
) -> None:
    async_runner.run(settle_env(desktop_env, desktop_env.observe, quiet_ms=200))
    still = async_runner.run(desktop_env.wait_still(200, 5))
    # the reference, then one look when the window is over: nothing in between
    assert still["how"] == "xdamage" and still["settled"] and still["polls"] == 2
    _polling(desktop_env)
    try:
        # a second of stillness: polled every 50 ms, more than two grabs even on a loaded
        # machine (200 ms once saw only two there)
        polled = async_runner.run(desktop_env.wait_still(1000, 5))
        assert polled["how"] == "grabs" and polled["settled"] and polled["polls"] >= 3
    finally:
        desktop_env._still = None


class SilentDamage:
    """A DAMAGE watch that hears nothing, as when drawing takes a path DAMAGE misses."""

    def clear(self) -> None:
        pass

    def damaged(self, timeout_s: float, region: Any = None) -> int:
        time.sleep(max(timeout_s, 0.0))
        return 0

    def close(self) -> None:
        pass


def test_a_change_damage_did_not_report_is_seen_by_the_last_look(
    tmp_path: Any, tk_app_factory: Any, desktop_env: Any, async_runner: Any
) -> None:
    script = tmp_path / "later.py"
    # well after the first look, and away from the other tests' windows
    script.write_text(LATE.replace("after(300,", "after(800,").replace("+500+300", "+1100+600"))
    app = tk_app_factory(script, title="Later silent")
    async_runner.run(settle_env(desktop_env, desktop_env.observe, quiet_ms=250))
    still = ScreenStill(desktop_env._grab_raw, None)
    still._damage = SilentDamage()
    before, desktop_env._still = desktop_env._still, still
    try:
        wx, wy, ww, wh = (int(v) for v in app.geometry())
        async_runner.run(desktop_env.act(Click(x=wx + 200, y=wy + 30)))
        # the change comes 800 ms after the click: a 1500 ms window leaves room on a loaded CI
        result = async_runner.run(desktop_env.wait_still(1500, 10))
        frame = async_runner.run(desktop_env.observe())
    finally:
        desktop_env._still = before
    window = np.asarray(frame.image.crop((wx, wy, wx + ww, wy + wh)).convert("L"))
    assert (window < 50).mean() > 0.1  # the click was taken: the label went black
    # reference; the last look finds the label changed, so the window starts again;
    # the next last look finds it still
    assert result["settled"] and result["events"] == 0 and result["polls"] == 3


def test_drawing_under_the_threshold_does_not_hold_the_settle(
    tmp_path: Any, tk_app_factory: Any, desktop_env: Any, async_runner: Any
) -> None:
    script = tmp_path / "blink.py"
    script.write_text(BLINK)
    app = tk_app_factory(script, title="Blink")
    wx, wy, ww, wh = app.geometry()
    still = async_runner.run(desktop_env.wait_still(300, 5))
    assert still["settled"] and still["events"] > 0  # drawn on, but the pixels barely moved
    # the region that matters can be the window alone: there the square is a big change
    region = Rect(wx, wy, ww, wh)
    busy = async_runner.run(desktop_env.wait_still(1000, 2.5, region))
    assert busy["settled"] is False


def test_bgra_thumbnail_matches_the_pil_thumbnail(desktop_env: Any, async_runner: Any) -> None:
    frame: Frame = async_runner.run(desktop_env.observe())
    raw = frame.image.convert("RGBA").tobytes("raw", "BGRA")
    small = bgra_thumbnail(raw, frame.image.width, frame.image.height)
    reference = thumbnail(frame.image)
    assert small.shape == reference.shape and small.dtype == reference.dtype
    assert np.abs(small - reference).max() <= 3


def test_windows_mapped_by_another_x_client_are_noticed_by_damage_events(
    desktop_env: Any, async_runner: Any, x_display: Any
) -> None:
    """Another python-xlib connection opened after the DAMAGE watch (its RANDR module once
    took DAMAGE's event code in the process-wide table) maps windows during the wait:
    each change is seen on a DAMAGE wake-up, never only by the last look."""
    from Xlib import display as xdisplay

    async_runner.run(desktop_env.wait_still(100, 5))  # the DAMAGE watch exists
    other = xdisplay.Display(x_display.display)
    screen = other.screen()
    shown: list[Any] = []
    try:
        for colour in [screen.black_pixel] + [screen.white_pixel, screen.black_pixel] * 3:
            for _attempt in range(3):
                window = screen.root.create_window(
                    1300, 100, 200, 200, 0, screen.root_depth,
                    background_pixel=colour, override_redirect=True,
                )  # fmt: skip
                other.sync()
                mapped_at: list[float] = []
                timer = threading.Timer(
                    0.1, lambda w=window, t=mapped_at: (w.map(), other.sync(), t.append(time.monotonic()))
                )  # fmt: skip
                timer.start()
                # mapped 100 ms into a 600 ms window (room for a late timer on a loaded machine)
                result = async_runner.run(desktop_env.wait_still(600, 5, Rect(1200, 0, 500, 400)))
                ended = time.monotonic()
                timer.join()
                shown.append(window)
                if mapped_at and mapped_at[0] < ended:
                    break
                # the timer thread ran only after the wait had ended (a loaded machine): the
                # wait had nothing to see; map the next one again during a wait
            else:
                raise AssertionError("the window was never mapped during a wait (3 tries)")
            if len(shown) == 1:
                continue  # the black base (the root may be black already)
            assert result["settled"] and result["how"] == "xdamage"
            assert result["events"] >= 1 and result["last_look_changes"] == 0, result
    finally:
        for window in shown:
            window.destroy()
        other.close()
