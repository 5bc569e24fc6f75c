"""Multi-monitor click check on a real Xorg dummy display (two 1280x800 monitors).

Layout (as guiagent/envs/display.py sets it up): DUMMY0 at 1280,0 is primary, DUMMY1 at 0,0 is not. One Tk window
sits on each monitor, each with its own button colour. For monitor 0 (the whole desktop)
and for each monitor's own mss number, the button is found by colour in the frame,
mapped through the frame transform and clicked through DesktopEnv.act.

Run as a script (``python multimonitor_check.py pyautogui``) it prints a JSON report: a
fresh process, because pyautogui binds to one X display per process. The test suite also
imports :func:`check` and runs it in-process with the xdotool backend.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from guiagent.core.actions import Click
from guiagent.core.geometry import Rect
from guiagent.envs.desktop import DesktopEnv
from guiagent.envs.display import XorgDummyDisplay
from guiagent.testing.fixtures import launch_tk_app

APP = Path(__file__).with_name("tk_button.py")
MONITORS = [(1280, 800, 1280, 0), (1280, 800, 0, 0)]  # DUMMY0 primary on the right
WINDOWS = {  # name -> (monitor index in MONITORS, geometry, button colour)
    "left": (1, "360x220+300+350", (0, 160, 255)),
    "right": (0, "360x220+1700+150", (255, 0, 200)),
}


def _find(frame: Any, rgb: tuple[int, int, int]) -> Rect | None:
    mask = np.all(frame.array() == np.array(rgb, dtype=np.uint8), axis=-1)
    ys, xs = np.nonzero(mask)
    if len(xs) < 20:
        return None
    return Rect.from_corners(
        float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    )


def _clicks(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["clicks"])
    except (OSError, ValueError, KeyError):
        return -1


async def check(backend: str) -> dict[str, Any]:
    report: dict[str, Any] = {"backend": backend, "clicks": []}
    tmp = Path(tempfile.mkdtemp(prefix="guiagent-mm-"))
    with XorgDummyDisplay(MONITORS, primary=0) as xorg:
        report["display"] = xorg.display
        numbers = {i: xorg.mss_number(i) for i in range(len(MONITORS))}
        report["mss_numbers"] = numbers
        apps = {}
        try:
            for name, (_, geometry, rgb) in WINDOWS.items():
                colour = "#{:02x}{:02x}{:02x}".format(*rgb)
                apps[name] = launch_tk_app(
                    APP,
                    str(tmp / f"{name}.json"),
                    "--geometry",
                    geometry,
                    "--button-color",
                    colour,
                    title=f"mm-{name}",
                    env=xorg.env,
                )
            plan = [(0, name) for name in WINDOWS] + [
                (numbers[idx], name) for name, (idx, _, _) in WINDOWS.items()
            ]
            for monitor, name in plan:
                _, _, rgb = WINDOWS[name]
                state = tmp / f"{name}.json"
                env = DesktopEnv(
                    display=xorg.display, monitor=monitor, failsafe=False, input_backend=backend
                )  # type: ignore[arg-type]
                async with env:
                    report["input_backend"] = env.input_backend
                    deadline = time.monotonic() + 10
                    while True:
                        frame = await env.observe()
                        box = _find(frame, rgb)
                        if box is not None or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.05)
                    if box is None:
                        report["clicks"].append(
                            {"monitor": monitor, "window": name, "found": False}
                        )
                        continue
                    before = _clicks(state)
                    screen = frame.transform.frame_to_screen(box.centre)
                    await env.act(Click(x=screen.x, y=screen.y))
                    deadline = time.monotonic() + 10
                    while _clicks(state) != before + 1 and time.monotonic() < deadline:
                        await asyncio.sleep(0.03)
                    report["clicks"].append(
                        {
                            "monitor": monitor,
                            "window": name,
                            "found": True,
                            "frame_size": [frame.size.width, frame.size.height],
                            "origin": [frame.transform.origin.x, frame.transform.origin.y],
                            "frame_point": [box.centre.x, box.centre.y],
                            "screen": [screen.x, screen.y],
                            "clicked": _clicks(state) == before + 1,
                            "monitors": frame.meta["monitors"],
                        }
                    )
        finally:
            for app in apps.values():
                app.stop()
    return report


if __name__ == "__main__":
    result = asyncio.run(check(sys.argv[1] if len(sys.argv) > 1 else "pyautogui"))
    sys.stdout.write(json.dumps(result) + "\n")
