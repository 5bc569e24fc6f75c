"""Kill switch: a way for the person at the machine to stop the agent between two input events.

Three triggers feed one :class:`KillSwitch`:

- Ctrl-C (:meth:`KillSwitch.install_sigint`): the first press asks for a graceful stop,
  the second raises KeyboardInterrupt at once;
- a global X11 hotkey (:class:`HotkeyListener`, default ``ctrl+alt+k``) grabbed on the
  root window from a background thread;
- pyautogui's corner failsafe: :func:`failsafe_as_killed` turns
  ``pyautogui.FailSafeException`` into :class:`Killed` (the desktop environment wraps its
  input calls in it).

Environments call :meth:`KillSwitch.check` before every input event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from loguru import logger


class Killed(Exception):
    """The kill switch was triggered; the run must stop before the next input event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeadlineExceeded(Killed):
    """The run's wall-time budget ran out in the middle of a step (waiting or acting)."""


class KillSwitch:
    """A thread-safe stop flag: set once, with the first reason kept.

    It also carries the run's wall-time deadline (``time.monotonic()`` seconds, set with
    :meth:`set_deadline`), so everything that checks the switch between two input events
    or while waiting also stops when the budget runs out.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self.deadline: float | None = None
        self.deadline_reason = "the wall-time budget ran out"

    def set_deadline(self, deadline: float | None, reason: str = "") -> None:
        self.deadline = deadline
        self.deadline_reason = reason or "the wall-time budget ran out"

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        return self._reason

    def trigger(self, reason: str = "stopped by the user") -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
                logger.warning("kill switch triggered: {}", reason)
            self._event.set()

    def check(self) -> None:
        """Raise :class:`Killed` if triggered; call it between any two input events."""
        if self._event.is_set():
            raise Killed(self._reason or "stopped")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineExceeded(self.deadline_reason)

    def reset(self) -> None:
        with self._lock:
            self._reason = None
            self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until triggered or ``timeout``; returns whether it was triggered."""
        return self._event.wait(timeout)

    async def sleep(self, seconds: float, poll_s: float = 0.05) -> None:
        """Sleep without blocking the event loop, raising :class:`Killed` as soon as the
        switch is triggered (for ``wait`` actions and back-offs)."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(poll_s, left))

    @contextlib.contextmanager
    def install_sigint(self) -> Iterator[KillSwitch]:
        """First Ctrl-C triggers a graceful stop; a second one raises KeyboardInterrupt.

        Only possible on the main thread; elsewhere this logs and changes nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            logger.warning("install_sigint called off the main thread: Ctrl-C handling unchanged")
            yield self
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.triggered:
                raise KeyboardInterrupt
            self.trigger("interrupted by Ctrl-C (press Ctrl-C again to abort at once)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def failsafe_as_killed(killswitch: KillSwitch | None = None) -> Iterator[None]:
    """Turn pyautogui's corner failsafe into :class:`Killed` (and trigger the switch).

    Matched by class name so this module does not import pyautogui (which needs DISPLAY).
    """
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ != "FailSafeException":
            raise
        reason = "pyautogui failsafe: the pointer was moved to a screen corner"
        if killswitch is not None:
            killswitch.trigger(reason)
        raise Killed(reason) from exc


class HotkeyError(RuntimeError):
    """The hotkey cannot be grabbed (no X display, unknown key, taken by another client)."""


_MODIFIERS = {"ctrl": "ControlMask", "control": "ControlMask", "shift": "ShiftMask", "alt": "Mod1Mask",
              "mod1": "Mod1Mask", "super": "Mod4Mask", "win": "Mod4Mask", "mod4": "Mod4Mask"}  # fmt: skip
_KEY_NAMES = {"esc": "Escape", "escape": "Escape", "enter": "Return", "return": "Return", "space": "space",
              "tab": "Tab", "backspace": "BackSpace", "delete": "Delete", "pause": "Pause"}  # fmt: skip


def parse_hotkey(hotkey: str) -> tuple[list[str], str]:
    """``"ctrl+alt+k"`` -> (["ControlMask", "Mod1Mask"], "k"): X modifier masks and a keysym name."""
    parts = [p.strip() for p in hotkey.split("+") if p.strip()]
    if not parts:
        raise HotkeyError(f"empty hotkey: {hotkey!r}")
    *mods, key = parts
    masks = []
    for mod in mods:
        mask = _MODIFIERS.get(mod.lower())
        if mask is None:
            raise HotkeyError(
                f"unknown modifier {mod!r} in hotkey {hotkey!r}; use ctrl, shift, alt or super"
            )
        masks.append(mask)
    keysym = _KEY_NAMES.get(key.lower(), key if len(key) > 1 else key.lower())
    return masks, keysym


class HotkeyListener:
    """Grabs a global hotkey on an X display and triggers the kill switch when pressed.

    Runs on a daemon thread with its own X connection; use as a context manager or call
    :meth:`start` / :meth:`stop`. ``display`` defaults to ``$DISPLAY``.
    """

    def __init__(
        self, killswitch: KillSwitch, hotkey: str = "ctrl+alt+k", display: str | None = None
    ) -> None:
        self.killswitch = killswitch
        self.hotkey = hotkey
        self.display_name = display if display is not None else os.environ.get("DISPLAY")
        self._masks, self._keysym = parse_hotkey(hotkey)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._display: Any = None

    def start(self) -> HotkeyListener:
        try:
            from Xlib import XK, X, error
            from Xlib.display import Display
        except ImportError as exc:
            raise HotkeyError("python-xlib is not installed: no X11 hotkey") from exc
        if not self.display_name:
            raise HotkeyError("no X display (DISPLAY is not set): no hotkey")
        try:
            display = Display(self.display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            raise HotkeyError(f"cannot open X display {self.display_name}: {exc}") from exc
        keysym = XK.string_to_keysym(self._keysym)
        keycode = display.keysym_to_keycode(keysym) if keysym else 0
        if not keycode:
            display.close()
            raise HotkeyError(
                f"key {self._keysym!r} of hotkey {self.hotkey!r} is not on this keyboard"
            )
        modifiers = 0
        for mask in self._masks:
            modifiers |= getattr(X, mask)
        root = display.screen().root
        catcher = error.CatchError(error.BadAccess)
        # grab with and without CapsLock / NumLock (Mod2), which would otherwise hide the chord
        for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
            root.grab_key(
                keycode, modifiers | extra, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher
            )
        display.sync()
        if catcher.get_error():
            display.close()
            raise HotkeyError(f"hotkey {self.hotkey} is already grabbed by another X client")
        self._keycode, self._modifiers = keycode, modifiers
        self._display = display
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"killswitch-hotkey-{self.hotkey}", daemon=True
        )
        self._thread.start()
        logger.info("kill switch hotkey {} armed on display {}", self.hotkey, self.display_name)
        return self

    def _run(self) -> None:
        from Xlib import X

        display = self._display
        try:
            while not self._stop.is_set():
                while display.pending_events():
                    event = display.next_event()
                    if event.type == X.KeyPress and event.detail == self._keycode:
                        self.killswitch.trigger(f"kill switch hotkey {self.hotkey} pressed")
                readable, _, _ = select.select([display.fileno()], [], [], 0.1)
                if readable:
                    display.pending_events()  # reads what arrived into the queue
        except Exception as exc:  # the X server went away: nothing more to listen to
            if not self._stop.is_set():
                logger.warning("kill switch hotkey listener stopped: {}", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._display is not None:
            with contextlib.suppress(Exception):
                from Xlib import X

                self._display.screen().root.ungrab_key(self._keycode, X.AnyModifier)
                self._display.flush()
            with contextlib.suppress(Exception):
                self._display.close()
            self._display = None

    def __enter__(self) -> HotkeyListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
