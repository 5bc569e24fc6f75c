"""Desktop screen helpers: the X11 UI scale, Windows DPI awareness, monitor rectangles
(split from ``desktop.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from loguru import logger


def x11_ui_scale(env: dict[str, str] | None = None) -> float:
    """The desktop's UI scale on X11: GDK_SCALE, QT_SCALE_FACTOR, else Xft.dpi / 96, else 1."""
    env = dict(os.environ if env is None else env)
    for var in ("GDK_SCALE", "QT_SCALE_FACTOR"):
        try:
            value = float(env.get(var, ""))
        except ValueError:
            continue
        if value > 0:
            return value
    if shutil.which("xrdb") and env.get("DISPLAY"):
        try:
            out = subprocess.run(
                ["xrdb", "-query"], env=env, capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return 1.0
        for line in out.splitlines():
            if line.startswith("Xft.dpi:"):
                try:
                    return float(line.split(":", 1)[1]) / 96.0
                except ValueError:
                    return 1.0
    return 1.0


def _make_dpi_aware() -> None:
    """Windows: per-monitor DPI awareness, so mss and pyautogui both use physical pixels."""
    if sys.platform != "win32":
        return
    import ctypes

    try:
        ctypes.windll.shcore.SetProcessDpiAwareness(2)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        try:
            ctypes.windll.user32.SetProcessDPIAware()  # type: ignore[attr-defined]
        except (AttributeError, OSError) as exc:
            logger.warning("could not make the process DPI aware: {}", exc)


def _rect(mon: dict[str, Any]) -> dict[str, int]:
    return {"left": mon["left"], "top": mon["top"], "width": mon["width"], "height": mon["height"]}


def x_window_title(dpy: Any) -> str | None:
    """The title of the active (else focused, else pointed-at) top-level window."""
    try:
        from Xlib import X

        root = dpy.screen().root
        window = None
        active = root.get_full_property(dpy.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        if active is not None and active.value and active.value[0]:
            window = dpy.create_resource_object("window", active.value[0])
        else:
            focus = dpy.get_input_focus().focus
            if not isinstance(focus, int) and focus != root:
                window = focus
        if window is None:
            # no window manager: focus follows the pointer (PointerRoot)
            child = root.query_pointer().child
            if isinstance(child, int) or not child:
                return None
            window = child
            name = window.get_wm_name()
            if name:
                return str(name)
            for sub in window.query_tree().children:  # a reparenting WM's frame
                name = sub.get_wm_name()
                if name:
                    return str(name)
            return None
        for _ in range(8):  # walk up from a child widget to the named top-level window
            if window is None or window == root:
                return None
            name = window.get_wm_name()
            if name:
                return str(name)
            window = window.query_tree().parent
    except Exception as exc:  # window went away between calls, no focus, ...
        logger.debug("no window title: {}", exc)
    return None
