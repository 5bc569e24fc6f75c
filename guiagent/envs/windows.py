"""The top-level windows of an X display (titles and boxes), read with python-xlib."""

from __future__ import annotations

from typing import Any

from loguru import logger
from pydantic import BaseModel


class XWindow(BaseModel):
    """A mapped top-level X window; box in screen points."""

    id: int
    title: str
    box: list[float]
    dialog: bool = False


def x_windows(display: str) -> list[XWindow]:
    """The viewable named top-level windows of an X display, bottom to top (stacking order).

    A window is a dialog when it is transient for another or typed as a dialog (EWMH).
    """
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.error import XError

    dpy = xdisplay.Display(display)
    try:
        root = dpy.screen().root
        dialog_type = dpy.intern_atom("_NET_WM_WINDOW_TYPE_DIALOG")
        type_atom = dpy.intern_atom("_NET_WM_WINDOW_TYPE")
        out: list[XWindow] = []
        for top in root.query_tree().children:
            try:
                if top.get_attributes().map_state != X.IsViewable:
                    continue
                named = _named_window(top)
                if named is None:
                    continue
                geo = top.get_geometry()  # children of the root: position on the screen
                kinds = named.get_full_property(type_atom, X.AnyPropertyType)
                dialog = named.get_wm_transient_for() is not None or (
                    kinds is not None and dialog_type in list(kinds.value)
                )
                out.append(
                    XWindow(
                        id=top.id,
                        title=str(named.get_wm_name()),
                        box=[float(geo.x), float(geo.y), float(geo.width), float(geo.height)],
                        dialog=bool(dialog),
                    )
                )
            except XError as exc:  # the window went away while we looked
                logger.debug("window skipped: {}", exc)
        return out
    finally:
        dpy.close()


def _named_window(window: Any, depth: int = 2) -> Any:
    """The window itself if it has a name, else a named child (a reparenting WM's frame)."""
    if window.get_wm_name():
        return window
    if depth == 0:
        return None
    for child in window.query_tree().children:
        found = _named_window(child, depth - 1)
        if found is not None:
            return found
    return None


def window_pid_at(display: str, x: float, y: float) -> int | None:
    """The process id (``_NET_WM_PID``) of the topmost top-level window at screen point
    (x, y), or None (no window there, or it does not say: Tk, Athena)."""
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.error import XError

    dpy = xdisplay.Display(display)
    try:
        root = dpy.screen().root
        top = root.translate_coords(root, int(x), int(y)).child
        if isinstance(top, int) or not top:
            return None
        pid_atom = dpy.intern_atom("_NET_WM_PID")
        for window in (top, _named_window(top)):
            if window is None:
                continue
            prop = window.get_full_property(pid_atom, X.AnyPropertyType)
            if prop is not None and len(prop.value):
                return int(prop.value[0])
        return None
    except XError as exc:  # the window went away while we looked
        logger.debug("no window pid at ({}, {}): {}", x, y, exc)
        return None
    finally:
        dpy.close()
