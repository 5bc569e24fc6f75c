"""Desktop input helpers: X keysym names for xdotool, XTest typing with real keycodes and
shift levels, pointer paths, and pyautogui's X connection (split from ``desktop.py``)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from loguru import logger

from guiagent.core.actions import (
    Click,
    DoubleClick,
    InvalidToolCall,
    Move,
    RightClick,
    modifier_prefix,
)
from guiagent.core.env import ActResult

_IS_X11 = sys.platform.startswith("linux") or sys.platform.startswith("freebsd")

# our key names (guiagent.core.actions.normalise_key) -> X keysyms for xdotool
_XDOTOOL_KEYS: dict[str, str] = {
    "enter": "Return",
    "esc": "Escape",
    "tab": "Tab",
    "backspace": "BackSpace",
    "delete": "Delete",
    "space": "space",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "home": "Home",
    "end": "End",
    "pageup": "Prior",
    "pagedown": "Next",
    "insert": "Insert",
    "ctrl": "ctrl",
    "alt": "alt",
    "shift": "shift",
    "win": "super",
    "command": "super",
    "capslock": "Caps_Lock",
    "printscreen": "Print",
    "menu": "Menu",
    "+": "plus",
    "-": "minus",
    "=": "equal",
    ",": "comma",
    ".": "period",
    "/": "slash",
    "\\": "backslash",
    ";": "semicolon",
    "'": "apostrophe",
    "`": "grave",
    "[": "bracketleft",
    "]": "bracketright",
    "<": "less",
    ">": "greater",
    " ": "space",
}
_PYAUTOGUI_ALIASES = {"command": "win"} if _IS_X11 else {}
XTEST_BATCH = 32  # keys sent in one XTest batch between two kill-switch checks


# modifier names of guiagent.core.actions.MODIFIERS -> pyautogui's and xdotool's key names
_PYAUTOGUI_MODIFIERS = {"ctrl": "ctrl", "shift": "shift", "alt": "alt", "meta": "win"}
_XDOTOOL_MODIFIERS = {"ctrl": "ctrl", "shift": "shift", "alt": "alt", "meta": "super"}


@contextlib.contextmanager
def pyautogui_modifiers(
    pg: Any, modifiers: Sequence[str], check: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold modifier keys down around the body with pyautogui; every key pressed is released
    in a ``finally``, with the corner fail-safe off for the release (the fail-safe raising
    instead of releasing would leave the key stuck down). ``check`` runs once all keys are
    down, before the body: the kill switch."""
    pressed: list[str] = []
    try:
        for name in modifiers:
            key = _PYAUTOGUI_MODIFIERS[name]
            pg.keyDown(key)
            pressed.append(key)
        if check is not None and pressed:
            check()
        yield
    finally:
        if pressed:
            failsafe = pg.FAILSAFE
            pg.FAILSAFE = False
            try:
                for key in reversed(pressed):
                    try:
                        pg.keyUp(key)
                    except Exception as exc:  # the X server went away: nothing is held
                        logger.warning("releasing {} failed: {}", key, exc)
            finally:
                pg.FAILSAFE = failsafe


@contextlib.contextmanager
def xdotool_modifiers(
    xdotool: Callable[..., str], modifiers: Sequence[str], check: Callable[[], None] | None = None
) -> Iterator[None]:
    """The same with ``xdotool keydown``/``keyup`` (one process each way)."""
    chord = "+".join(_XDOTOOL_MODIFIERS[name] for name in modifiers)
    if not chord:
        yield
        return
    xdotool("keydown", chord)
    try:
        if check is not None:
            check()
        yield
    finally:
        try:
            xdotool("keyup", chord)
        except Exception as exc:  # the X server went away: nothing is held
            logger.warning("releasing {} failed: {}", chord, exc)


def pyautogui_point(
    pg: Any, action: Click | DoubleClick | RightClick | Move, check: Callable[[], None]
) -> ActResult:
    """A click kind or a move with pyautogui; with modifiers: move, keys down, click, keys up."""
    x, y = _pt(action.x, action.y)
    held = () if isinstance(action, Move) else action.modifiers
    if held:
        pg.moveTo(x, y)
    with pyautogui_modifiers(pg, held, check):
        if isinstance(action, Click):
            pg.click(x, y)
        elif isinstance(action, DoubleClick):
            pg.doubleClick(x, y, interval=0.05)
        elif isinstance(action, RightClick):
            pg.rightClick(x, y)
        else:
            pg.moveTo(x, y)
    return ActResult(detail=f"{modifier_prefix(held)}{action.name} at {x},{y}")


def xdotool_point(
    xdotool: Callable[..., str],
    action: Click | DoubleClick | RightClick | Move,
    there: bool,
    check: Callable[[], None],
) -> ActResult:
    """The same with xdotool. ``there``: the pointer already is at the point, and
    ``mousemove --sync`` to where it is would wait about 16 s for a motion."""
    x, y = _pt(action.x, action.y)
    move = [] if there else ["mousemove", "--sync", str(x), str(y)]
    held = () if isinstance(action, Move) else action.modifiers
    if move and (held or isinstance(action, Move)):  # move, keys down, click
        xdotool(*move)
        move = []
    with xdotool_modifiers(xdotool, held, check):
        if isinstance(action, Click):
            xdotool(*move, "click", "1")
        elif isinstance(action, DoubleClick):
            xdotool(*move, "click", "--repeat", "2", "--delay", "50", "1")
        elif isinstance(action, RightClick):
            xdotool(*move, "click", "3")
    return ActResult(detail=f"{modifier_prefix(held)}{action.name} at {x},{y}")


TYPE_CHUNK = 16  # characters per xdotool/pyautogui call when typing: checks come between chunks


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class XTypeError(RuntimeError):
    """Text could not be typed through XTest (extension missing, no spare keycodes...)."""


def char_keysym(ch: str) -> int:
    """The X keysym that produces one character (Latin-1 directly, else the Unicode keysym)."""
    special = {"\n": 0xFF0D, "\r": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08}
    if ch in special:
        return special[ch]
    code = ord(ch)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 | code


class XTestTyper:
    """Types text with XTest key events, choosing each keysym's real keycode and shift level.

    pyautogui looks up one keycode per keysym and guesses shift from the character, which
    types ``<`` as ``>`` where ``less`` lives on the unshifted <> key (pyautogui#198). Here
    the keyboard map is read at each call; characters missing from it are bound to spare
    keycodes and stay bound until :meth:`restore` (xdotool unbinds after each character,
    and a busy app that reads the key after the unbinding gets nothing).
    """

    def __init__(self, dpy: Any) -> None:
        self.dpy = dpy
        self.bound: dict[int, int] = {}  # keysym -> spare keycode we bound it to

    def type(
        self, text: str, delay_s: float = 0.0, check: Callable[[], None] | None = None
    ) -> None:
        from Xlib import XK, X
        from Xlib.ext import xtest

        dpy = self.dpy
        if not dpy.has_extension("XTEST"):
            raise XTypeError("the X server has no XTEST extension")
        text = text.replace("\r\n", "\n")
        needed = {char_keysym(c) for c in text}
        where = self._keymap()
        missing = sorted(needed - set(where))
        if missing:
            spare = self._spare()
            if len(missing) > len(spare):  # recycle our bindings this text does not use
                for sym in [s for s in self.bound if s not in needed]:
                    self._unbind(sym)
                spare = self._spare()
            if len(missing) > len(spare):
                raise XTypeError(
                    f"{len(missing)} characters need spare keycodes, only {len(spare)} free"
                )
            for keycode, sym in zip(spare, missing, strict=False):
                dpy.change_keyboard_mapping(keycode, [(sym, sym)])
                self.bound[sym] = keycode
                where[sym] = (keycode, False)
            dpy.sync()
            time.sleep(0.05)  # let clients see the MappingNotify before the keys
        shift = dpy.keysym_to_keycode(XK.XK_Shift_L)
        # without a per-key delay the keys go in batches of XTEST_BATCH, one round trip
        # (sync) and one kill-switch check per batch
        chunk = 1 if delay_s else XTEST_BATCH
        for start in range(0, len(text), chunk):
            if check is not None:
                check()
            for ch in text[start : start + chunk]:
                keycode, shifted = where[char_keysym(ch)]
                if shifted:
                    xtest.fake_input(dpy, X.KeyPress, shift)
                xtest.fake_input(dpy, X.KeyPress, keycode)
                xtest.fake_input(dpy, X.KeyRelease, keycode)
                if shifted:
                    xtest.fake_input(dpy, X.KeyRelease, shift)
            dpy.sync()
            if delay_s:
                time.sleep(delay_s)

    def _mapping(self) -> tuple[int, list[list[int]]]:
        first = self.dpy.display.info.min_keycode
        count = self.dpy.display.info.max_keycode - first + 1
        return first, [list(syms) for syms in self.dpy.get_keyboard_mapping(first, count)]

    def _keymap(self) -> dict[int, tuple[int, bool]]:
        """keysym -> (keycode, needs shift), preferring unshifted levels."""
        first, mapping = self._mapping()
        where: dict[int, tuple[int, bool]] = {}
        for offset, syms in enumerate(mapping):
            for level, sym in enumerate(syms[:2]):
                if sym and (sym not in where or (level == 0 and where[sym][1])):
                    where[sym] = (first + offset, level == 1)
        return where

    def _spare(self) -> list[int]:
        first, mapping = self._mapping()
        return [first + i for i, syms in enumerate(mapping) if not any(syms)]

    def _unbind(self, sym: int) -> None:
        from Xlib import X

        keycode = self.bound.pop(sym)
        self.dpy.change_keyboard_mapping(keycode, [(X.NoSymbol, X.NoSymbol)])

    def restore(self) -> None:
        """Give back the spare keycodes this typer bound."""
        for sym in list(self.bound):
            self._unbind(sym)
        self.dpy.sync()


def _pt(x: float | None, y: float | None) -> tuple[int, int]:
    if x is None or y is None:
        raise InvalidToolCall("point", "a point needs both x and y")
    return (round(x), round(y))


def _path(x1: int, y1: int, x2: int, y2: int, steps: int = 8) -> list[tuple[int, int]]:
    """Intermediate pointer positions: toolkits only start a drag after some motion."""
    return [
        (round(x1 + (x2 - x1) * i / steps), round(y1 + (y2 - y1) * i / steps))
        for i in range(1, steps + 1)
    ]


def _pyautogui_display() -> str | None:
    """The X display pyautogui connected to when it was imported (None if unknown)."""
    x11 = sys.modules.get("pyautogui._pyautogui_x11")
    dpy = getattr(x11, "_display", None)
    if dpy is None:
        return None
    try:
        return str(dpy.get_display_name())
    except Exception:
        return None


def _pyautogui_alive() -> bool:
    """Whether pyautogui's X connection still reaches its server (one round trip)."""
    x11 = sys.modules.get("pyautogui._pyautogui_x11")
    dpy = getattr(x11, "_display", None)
    if dpy is None:
        return False
    try:
        dpy.get_input_focus()
    except Exception:
        return False
    return True


def _same_display(a: str, b: str) -> bool:
    def norm(d: str) -> str:
        d = d.strip()
        d = d[4:] if d.startswith("unix:") else d
        return d[:-2] if d.endswith(".0") else d

    return norm(a) == norm(b)
