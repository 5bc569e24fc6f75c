"""Two monitors on a real Xorg dummy display, primary NOT the leftmost (RandR outputs of Xorg's dummy driver: guiagent/envs/display.py).

Fails loudly (never skips) when Xorg with the dummy driver cannot run here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mss
import pytest

from guiagent.envs.display import DisplayError, XorgDummyDisplay

pytestmark = pytest.mark.desktop

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).resolve().parents[1]


def _load_check() -> Any:
    spec = importlib.util.spec_from_file_location(
        "multimonitor_check", APPS / "multimonitor_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_report(report: dict[str, Any], backend: str) -> None:
    assert report["input_backend"] == backend
    numbers = {int(k): v for k, v in report["mss_numbers"].items()}
    assert numbers == {0: 1, 1: 2}  # mss lists the primary (DUMMY0, at 1280,0) first
    clicks = {(c["monitor"], c["window"]): c for c in report["clicks"]}
    assert set(clicks) == {(0, "left"), (0, "right"), (2, "left"), (1, "right")}
    for key, click in clicks.items():
        assert click["found"], f"button not visible for {key}"
        assert click["clicked"], f"click did not reach the window for {key}: {click}"
    whole = clicks[(0, "right")]
    assert whole["frame_size"] == [2560, 800] and whole["origin"] == [0.0, 0.0]
    primary = clicks[(1, "right")]
    assert primary["frame_size"] == [1280, 800] and primary["origin"] == [1280.0, 0.0]
    # same button, two captures: different frame pixels, same desktop point
    assert primary["frame_point"][0] == whole["frame_point"][0] - 1280
    assert primary["screen"] == whole["screen"]
    assert clicks[(2, "left")]["origin"] == [0.0, 0.0]
    assert whole["monitors"] == [
        {"left": 1280, "top": 0, "width": 1280, "height": 800, "primary": True},
        {"left": 0, "top": 0, "width": 1280, "height": 800, "primary": False},
    ]


def test_xorg_dummy_two_monitors_reported_by_mss() -> None:
    with XorgDummyDisplay([(1280, 800, 1280, 0), (1280, 800, 0, 0)], primary=0) as xorg:
        with mss.MSS(display=xorg.display) as grabber:
            monitors = grabber.monitors
            shot = grabber.grab(monitors[0])
        assert (monitors[0]["width"], monitors[0]["height"]) == (2560, 800)
        rects = {
            (m["left"], m["top"], m["width"], m["height"], bool(m.get("is_primary")))
            for m in monitors[1:]
        }
        assert rects == {(1280, 0, 1280, 800, True), (0, 0, 1280, 800, False)}
        assert shot.size == (2560, 800)
        display = xorg.display
    from guiagent.envs.display import display_reachable

    assert not display_reachable(display)


def test_xorg_dummy_rejects_bad_layouts() -> None:
    with pytest.raises(DisplayError, match="position >= 0"):
        XorgDummyDisplay([(1280, 800, -1280, 0)])
    with pytest.raises(DisplayError, match="primary index"):
        XorgDummyDisplay([(1280, 800, 0, 0)], primary=1)


def test_clicks_on_both_monitors_xdotool_in_process(async_runner: Any) -> None:
    report = async_runner.run(_load_check().check("xdotool"), timeout=120)
    _assert_report(report, "xdotool")


def test_clicks_on_both_monitors_pyautogui_in_subprocess() -> None:
    # pyautogui binds to one X display per process: give it a fresh one
    proc = subprocess.run(
        [sys.executable, str(APPS / "multimonitor_check.py"), "pyautogui"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    _assert_report(json.loads(last), "pyautogui")
