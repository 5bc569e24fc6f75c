"""The desktop surface: mss for pixels, pyautogui (or xdotool) for the mouse and keyboard.

Threading: every blocking call (mss grabs, pyautogui, xdotool) runs on ONE worker thread
owned by the env. mss handles on X11 belong to the thread that made them, so the mss
instance is created on that thread too.

Coordinates: actions arrive in desktop points. On X11 both mss and pyautogui use root
window pixels, so a frame pixel is a desktop point offset by the captured monitor's
origin (the transform's ``origin``); X cannot have negative origins, other platforms can
(a monitor left of the primary on Windows/macOS sits at negative x) and the transform
carries that offset unchanged. HiDPI: on macOS mss reports monitors in points and grabs
Retina pixels, so the scale is derived from capture size / logical size; on Windows the
process is made per-monitor DPI aware first so mss and pyautogui agree on physical
pixels (scale 1). On X11 there is no logical/physical split for input: the desktop scale
(``Xft.dpi``, ``GDK_SCALE``, ``QT_SCALE_FACTOR``) only makes applications draw bigger; it
is reported in ``meta["ui_scale"]`` and never applied to coordinates.

One process, one pyautogui display: pyautogui opens its X connection from ``$DISPLAY``
when first imported and keeps it in module state. The first DesktopEnv of a process sets
``DISPLAY``/``XAUTHORITY`` and imports it; a DesktopEnv on a different X display (or on a
new server that reused the number of pyautogui's dead one) then uses xdotool
subprocesses for input instead (``input_backend="auto"``). Text is always
typed with ``xdotool type`` on X11: pyautogui's typewrite turns ``<`` into ``>`` on common
keymaps (pyautogui#198) and cannot type characters missing from the keymap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Literal, TypeVar

from loguru import logger
from PIL import Image

from guiagent.core.actions import (
    BaseAction,
    Click,
    DoubleClick,
    Drag,
    Fail,
    Finish,
    InvalidToolCall,
    Key,
    Move,
    RightClick,
    Scroll,
    Type,
    Wait,
)
from guiagent.core.env import ActResult, Frame, SurfaceGoneError
from guiagent.core.geometry import Rect, Size, transform_for_monitor
from guiagent.core.killswitch import Killed, KillSwitch
from guiagent.envs.desktop_a11y import AccessibleFocusMixin
from guiagent.envs.desktop_input import (  # noqa: F401  (re-exported: old import path)
    _PYAUTOGUI_ALIASES,
    _XDOTOOL_KEYS,
    TYPE_CHUNK,
    XTEST_BATCH,
    XTestTyper,
    XTypeError,
    _chunks,
    _path,
    _pt,
    _pyautogui_alive,
    _pyautogui_display,
    _same_display,
    char_keysym,
    pyautogui_point,
    xdotool_point,
)
from guiagent.envs.desktop_screen import _make_dpi_aware, _rect, x11_ui_scale, x_window_title
from guiagent.envs.desktop_still import ScreenStill
from guiagent.envs.display import (
    XvfbDisplay,
    client_xauthority,
    display_reachable,
    ensure_display,
    restore_x_client_env,
    x_client_env,
)

T = TypeVar("T")
InputBackend = Literal["auto", "pyautogui", "xdotool"]
_IS_X11 = sys.platform.startswith("linux") or sys.platform.startswith("freebsd")


class FailSafeError(Killed):
    """The pointer was pushed into a screen corner: the kill switch stopped the action."""


class DesktopEnv(AccessibleFocusMixin):
    """Environment for a whole desktop or one monitor of it (``surface == "desktop"``).

    ``monitor`` follows mss numbering: ``0``/``"all"`` the whole virtual desktop, ``1..N``
    one monitor, ``"primary"`` the primary one. ``scale`` overrides the frame-to-screen
    scale (device pixels per desktop point; derived from the capture when None).
    ``failsafe`` keeps pyautogui's corner kill switch on (default: on, except on an Xvfb
    this env started itself). ``type_delay_ms`` is the per-key delay for typing (0: keys
    go in XTest batches of XTEST_BATCH). ``atspi_env``: how to reach the accessibility
    bus (``DBUS_SESSION_BUS_ADDRESS``) for :meth:`accessible_focus`; None: this process's.
    """

    surface = "desktop"

    def __init__(
        self,
        display: str | None = None,
        monitor: int | str = "all",
        scale: float | None = None,
        failsafe: bool | None = None,
        input_backend: InputBackend = "auto",
        type_delay_ms: int = 0,
        atspi_env: dict[str, str] | None = None,
    ) -> None:
        if isinstance(monitor, str) and monitor not in ("all", "primary"):
            if not monitor.isdigit():
                raise ValueError(f"monitor must be 'all', 'primary' or a number, got {monitor!r}")
            monitor = int(monitor)
        if isinstance(monitor, int) and monitor < 0:
            raise ValueError(f"monitor numbers start at 0 (all monitors), got {monitor}")
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.requested_display = display
        self.monitor: int | str = 0 if monitor == "all" else monitor
        self.scale = scale
        self.failsafe = failsafe
        # the agent's kill switch, checked between any two input events of one action
        self.killswitch: KillSwitch | None = None
        self.input_backend: InputBackend = input_backend
        self.type_delay_ms = type_delay_ms
        self.atspi_env = atspi_env
        self.display: str | None = None
        self.xauthority: str | None = None
        self._own_server: XvfbDisplay | None = None
        self._env_before_own_server: dict[str, str | None] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._mss: Any = None
        self._xlib: Any = None
        self._typer: XTestTyper | None = None
        self._still: ScreenStill | None = None
        self._pyautogui: Any = None
        self._ui_scale = 1.0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> DesktopEnv:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> DesktopEnv:
        if self._executor is not None:
            return self
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guiagent-desktop")
        try:
            await self._call(self._setup)
        except BaseException:
            await self.close()
            raise
        return self

    def _setup(self) -> None:
        import mss

        if _IS_X11:
            if self.requested_display is None:
                self._env_before_own_server = x_client_env()
                self.display, self._own_server = ensure_display()
            else:
                self.display = self.requested_display
                if not display_reachable(self.display):
                    raise SurfaceGoneError(f"X display {self.display} does not answer")
            self.xauthority = client_xauthority(self._own_server)
            self._mss = mss.MSS(display=self.display)
            self._ui_scale = x11_ui_scale({**os.environ, **self._x_env()})
            try:
                from Xlib import display as xdisplay

                self._xlib = xdisplay.Display(self.display)
            except Exception as exc:  # best effort: only used for the window title
                logger.debug("no Xlib connection for window titles: {}", exc)
        else:
            _make_dpi_aware()
            self._mss = mss.MSS()
        if self.failsafe is None:
            self.failsafe = self._own_server is None
        backend = self.input_backend
        if backend == "auto":
            backend = "pyautogui" if self._pyautogui_usable() else "xdotool"
        if backend == "xdotool":
            if not _IS_X11 or shutil.which("xdotool") is None:
                raise SurfaceGoneError("xdotool input needs X11 and the xdotool program")
        else:
            self._pyautogui = self._import_pyautogui()
        self.input_backend = backend
        self._check_monitor()
        logger.info(
            "desktop env on {} monitor {} (input: {}, failsafe: {})",
            self.display or sys.platform,
            self.monitor,
            backend,
            self.failsafe,
        )

    def _x_env(self) -> dict[str, str]:
        return {"DISPLAY": self.display or "", "XAUTHORITY": self.xauthority or ""}

    def _pyautogui_usable(self) -> bool:
        if not _IS_X11:
            return True
        module = sys.modules.get("pyautogui")
        if module is None:
            return True
        bound = _pyautogui_display()
        # a server that died may hand its number to a new one: the old connection is dead
        return bound is not None and _same_display(bound, self.display or "") and _pyautogui_alive()

    def _import_pyautogui(self) -> Any:
        if _IS_X11 and "pyautogui" not in sys.modules:
            # pyautogui (and mouseinfo) connect to $DISPLAY at import time
            os.environ["DISPLAY"] = self.display or ""
            os.environ["XAUTHORITY"] = self.xauthority or ""
        if _IS_X11 and not self._pyautogui_usable():
            raise SurfaceGoneError(
                f"pyautogui in this process is bound to X display {_pyautogui_display()}, not "
                f"{self.display}; use input_backend='xdotool' for a second display"
            )
        import pyautogui

        pyautogui.PAUSE = 0
        pyautogui.MINIMUM_DURATION = 0
        return pyautogui

    def _check_monitor(self) -> None:
        monitors = self._mss.monitors
        if self.monitor == "primary":
            self.monitor = next((i for i, m in enumerate(monitors) if i and m.get("is_primary")), 1)
        if not isinstance(self.monitor, int) or self.monitor >= len(monitors):
            raise ValueError(
                f"monitor {self.monitor} does not exist: this desktop has {len(monitors) - 1} monitor(s), "
                "numbered 1.., and 0 for all of them"
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._close_accessibility)
        executor, self._executor = self._executor, None
        if executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, self._teardown)
            executor.shutdown(wait=True)

    def _teardown(self) -> None:
        if self._still is not None:
            self._still.close()
            self._still = None
        if self._mss is not None:
            try:
                self._mss.close()
            except Exception as exc:
                logger.debug("closing mss: {}", exc)
            self._mss = None
        if self._typer is not None:
            try:
                self._typer.restore()
            except Exception as exc:  # the X server may already be gone
                logger.debug("restoring the keymap: {}", exc)
            self._typer = None
        if self._xlib is not None:
            try:
                self._xlib.close()
            except Exception as exc:
                logger.debug("closing Xlib: {}", exc)
            self._xlib = None
        if self._own_server is not None:
            restore_x_client_env(self._own_server, self._env_before_own_server)
            self._own_server.stop()
            self._own_server = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise SurfaceGoneError(
                "desktop env is not started (use 'async with DesktopEnv()' or await start())"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # -- observe ---------------------------------------------------------------------

    async def observe(self) -> Frame:
        return await self._call(self._observe)

    def _observe(self) -> Frame:
        monitors = self._mss.monitors
        index = int(self.monitor)
        mon = monitors[index]
        try:
            shot = self._mss.grab(mon)
        except Exception as exc:
            raise SurfaceGoneError(f"cannot capture the screen of {self.display}: {exc}") from exc
        image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
        transform = transform_for_monitor(
            mon["left"],
            mon["top"],
            mon["width"],
            mon["height"],
            Size(image.width, image.height),
            self.scale,
        )
        meta: dict[str, Any] = {
            "display": self.display,
            "monitor": index,
            "monitor_rect": _rect(mon),
            "monitors": [
                _rect(m) | {"primary": bool(m.get("is_primary", False))} for m in monitors[1:]
            ],
            "window_title": self._window_title(),
            "ui_scale": self._ui_scale,
        }
        return Frame(image=image, transform=transform, surface=self.surface, meta=meta)

    def _window_title(self) -> str | None:
        return None if self._xlib is None else x_window_title(self._xlib)

    async def wait_still(
        self, quiet_ms: float, timeout_s: float, region: Rect | None = None
    ) -> dict[str, Any] | None:
        """Block until the captured monitor (or ``region``, desktop points) stays still for
        ``quiet_ms``: thumbnails of mss grabs, looked at when X DAMAGE says something was
        drawn (polled without DAMAGE); see :mod:`guiagent.envs.desktop_still`."""
        try:
            return await self._call(self._wait_still, quiet_ms, timeout_s, region)
        except asyncio.CancelledError:  # the worker thread is needed for what comes next
            if self._still is not None:
                self._still.cancel()
            raise

    def _wait_still(self, quiet_ms: float, timeout_s: float, region: Rect | None) -> dict[str, Any]:
        if self._still is None:
            self._still = ScreenStill(self._grab_raw, self.display if _IS_X11 else None)
        mon = self._mss.monitors[int(self.monitor)]
        box = (mon["left"], mon["top"], mon["width"], mon["height"])
        if region is not None:
            left, top = max(int(region.left), box[0]), max(int(region.top), box[1])
            right = min(int(region.right + 0.999), box[0] + box[2])
            bottom = min(int(region.bottom + 0.999), box[1] + box[3])
            if right > left and bottom > top:
                box = (left, top, right - left, bottom - top)
        return self._still.wait(quiet_ms, timeout_s, box)

    def _grab_raw(self, box: tuple[int, int, int, int]) -> tuple[Any, int, int]:
        left, top, width, height = box
        try:
            shot = self._mss.grab({"left": left, "top": top, "width": width, "height": height})
        except Exception as exc:
            raise SurfaceGoneError(f"cannot capture the screen of {self.display}: {exc}") from exc
        return shot.raw, shot.width, shot.height

    # -- act -------------------------------------------------------------------------

    async def windows(self) -> list[dict[str, Any]]:
        """The visible top-level windows (title and box in screen points), bottom to top."""
        from guiagent.envs.windows import x_windows

        if not self.display:
            return []
        found = await asyncio.to_thread(x_windows, self.display)
        return [
            {"title": w.title, "x": w.box[0], "y": w.box[1], "width": w.box[2], "height": w.box[3]}
            for w in found
        ]

    async def act(self, action: BaseAction) -> ActResult:
        if isinstance(action, Wait):  # the kill switch and the run's deadline end a wait too
            if self.killswitch is not None:
                await self.killswitch.sleep(action.seconds)
            else:
                await asyncio.sleep(action.seconds)
            return ActResult(detail=f"waited {action.seconds:g}s")
        if isinstance(action, (Finish, Fail)):
            return ActResult(detail=action.name)
        return await self._call(self._act, action)

    def _act(self, action: BaseAction) -> ActResult:
        try:
            if self.input_backend == "pyautogui":
                return self._act_pyautogui(action)
            return self._act_xdotool(action)
        except (InvalidToolCall, Killed, SurfaceGoneError):
            raise
        except Exception as exc:  # Xlib connection errors when the X server went away
            if _IS_X11 and not display_reachable(self.display or ""):
                raise SurfaceGoneError(f"X display {self.display} is gone: {exc}") from exc
            raise

    def _act_pyautogui(self, action: BaseAction) -> ActResult:
        self._check_killed()
        pg = self._pyautogui
        pg.FAILSAFE = bool(self.failsafe)
        try:
            if isinstance(action, (Click, DoubleClick, RightClick, Move)):
                return pyautogui_point(pg, action, self._check_killed)
            if isinstance(action, Drag):
                (x1, y1), (x2, y2) = _pt(action.x1, action.y1), _pt(action.x2, action.y2)
                pg.moveTo(x1, y1)
                pg.mouseDown(x1, y1)
                try:
                    for sx, sy in _path(x1, y1, x2, y2):
                        self._check_killed()
                        pg.moveTo(sx, sy)
                finally:
                    pg.mouseUp()
                return ActResult(detail=f"drag {x1},{y1} -> {x2},{y2}")
            if isinstance(action, Scroll):
                at = (
                    _pt(action.x, action.y)
                    if action.x is not None and action.y is not None
                    else (None, None)
                )
                if at[0] is not None:
                    pg.moveTo(*at)
                notches = action.amount if action.direction in ("up", "right") else -action.amount
                if action.direction in ("up", "down"):
                    pg.scroll(notches, x=at[0], y=at[1])
                else:
                    pg.hscroll(notches, x=at[0], y=at[1])
                return ActResult(detail=f"scroll {action.direction} {action.amount}")
            if isinstance(action, Type):
                if _IS_X11:
                    self._type_x11(action.text)
                else:
                    for chunk in _chunks(action.text, TYPE_CHUNK):
                        self._between_events()
                        pg.write(chunk)
                return ActResult(detail=f"typed {len(action.text)} characters")
            if isinstance(action, Key):
                keys = [_PYAUTOGUI_ALIASES.get(k, k) for k in action.keys]
                unknown = [k for k in keys if k not in pg.KEYBOARD_KEYS]
                if unknown:
                    raise InvalidToolCall(
                        "key",
                        f"unknown key name(s) {unknown}; use names like ctrl, alt, shift, enter, esc, tab, f5, a",
                    )
                pg.hotkey(*keys)
                return ActResult(detail="pressed " + "+".join(keys))
        except pg.FailSafeException as exc:
            raise FailSafeError(
                "pointer in a screen corner: pyautogui's fail-safe stopped the action (kill switch)"
            ) from exc
        raise InvalidToolCall(action.name, f"the desktop cannot perform {action.name!r}")

    # xdotool ------------------------------------------------------------------------

    def _xdotool(self, *args: str, stdin: str | None = None) -> str:
        env = {**os.environ, **self._x_env()}
        try:
            proc = subprocess.run(
                ["xdotool", *args],
                env=env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SurfaceGoneError(f"xdotool failed on {self.display}: {exc}") from exc
        if proc.returncode != 0:
            if not display_reachable(self.display or ""):
                raise SurfaceGoneError(f"X display {self.display} is gone")
            raise SurfaceGoneError(f"xdotool {' '.join(args[:3])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _type_x11(self, text: str) -> None:
        if self._xlib is not None:
            try:
                if self._typer is None:
                    self._typer = XTestTyper(self._xlib)
                # the kill switch, the run's deadline and the corner fail-safe between keys
                self._typer.type(text, self.type_delay_ms / 1000.0, self._between_events)
                return
            except XTypeError as exc:
                logger.warning("XTest typing failed ({}); falling back to xdotool type", exc)
        for chunk in _chunks(text, TYPE_CHUNK):
            self._between_events()
            self._xdotool_type(chunk)

    def _xdotool_type(self, text: str) -> None:
        # --file - reads the text from stdin: no argv limits, text may start with '-'
        self._xdotool(
            "type",
            "--clearmodifiers",
            "--delay",
            str(self.type_delay_ms),
            "--file",
            "-",
            stdin=text,
        )

    def _check_killed(self) -> None:
        if self.killswitch is not None:
            self.killswitch.check()

    def _between_events(self) -> None:
        """Checked between any two input events of an action (each key of a ``type``): the
        kill switch with the run's deadline, then the corner fail-safe."""
        self._check_killed()
        self._check_corner()

    def _pointer_and_screen(self) -> tuple[int, int, int, int, int, int]:
        """(x, y, left, top, width, height): the pointer and the whole X screen."""
        if self._xlib is not None:  # one round trip each, cheap enough between two keys
            root = self._xlib.screen().root
            pointer = root.query_pointer()
            geometry = root.get_geometry()
            return pointer.root_x, pointer.root_y, 0, 0, geometry.width, geometry.height
        out = self._xdotool("getmouselocation", "--shell")
        pos = dict(line.split("=", 1) for line in out.split() if "=" in line)
        whole = self._mss.monitors[0]
        return (
            int(pos.get("X", -1)),
            int(pos.get("Y", -1)),
            whole["left"],
            whole["top"],
            whole["width"],
            whole["height"],
        )

    def _check_corner(self) -> None:
        if not self.failsafe:
            return
        x, y, left, top, width, height = self._pointer_and_screen()
        if x in (left, left + width - 1) and y in (top, top + height - 1):
            raise FailSafeError(
                "pointer in a screen corner: the fail-safe stopped the action (kill switch)"
            )

    def _act_xdotool(self, action: BaseAction) -> ActResult:
        self._check_killed()
        self._check_corner()
        if isinstance(action, (Click, DoubleClick, RightClick, Move)):
            x, y = _pt(action.x, action.y)
            there = self._pointer_and_screen()[:2] == (x, y)
            return xdotool_point(self._xdotool, action, there, self._check_killed)
        if isinstance(action, Drag):
            (x1, y1), (x2, y2) = _pt(action.x1, action.y1), _pt(action.x2, action.y2)
            args = ["mousemove", "--sync", str(x1), str(y1), "mousedown", "1"]
            for sx, sy in _path(x1, y1, x2, y2):
                args += ["mousemove", "--sync", str(sx), str(sy)]
            self._xdotool(*args, "mouseup", "1")
            return ActResult(detail=f"drag {x1},{y1} -> {x2},{y2}")
        if isinstance(action, Scroll):
            button = {"up": "4", "down": "5", "left": "6", "right": "7"}[action.direction]
            args = []
            if action.x is not None and action.y is not None:
                x, y = _pt(action.x, action.y)
                args = ["mousemove", "--sync", str(x), str(y)]
            self._xdotool(*args, "click", "--repeat", str(action.amount), "--delay", "10", button)
            return ActResult(detail=f"scroll {action.direction} {action.amount}")
        if isinstance(action, Type):
            self._type_x11(action.text)
            return ActResult(detail=f"typed {len(action.text)} characters")
        if isinstance(action, Key):
            names = []
            for key in action.keys:
                if key in _XDOTOOL_KEYS:
                    names.append(_XDOTOOL_KEYS[key])
                elif len(key) == 1 or (key[0] == "f" and key[1:].isdigit()):
                    names.append(key.upper() if key[0] == "f" and len(key) > 1 else key)
                else:
                    raise InvalidToolCall(
                        "key",
                        f"unknown key name {key!r}; use names like ctrl, alt, shift, enter, esc, tab, f5, a",
                    )
            chord = "+".join(names)
            self._xdotool("key", "--clearmodifiers", chord)
            return ActResult(detail=f"pressed {chord}")
        raise InvalidToolCall(action.name, f"the desktop cannot perform {action.name!r}")
