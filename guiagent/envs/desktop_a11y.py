"""What the desktop's accessibility bus (AT-SPI) says about the keyboard focus.

A check of typed text asks :meth:`AccessibleFocusMixin.accessible_focus` at the point it
clicked: the application of the topmost window there (by its ``_NET_WM_PID``) is looked up
on the bus and its focused object and the text field at the point are read. None means
"cannot tell here" and the caller reads the pixels instead: no bus (no
``DBUS_SESSION_BUS_ADDRESS``), no Python with the Atspi bindings, a window that names no
process (Tk, Athena), or an application not on the bus. Every call is bounded by
``A11Y_TIMEOUT_S``; after a timeout or a dead helper the bus is not asked again for this
environment (a hung bus must not slow every step down).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from loguru import logger

from guiagent.envs.atspi import AtspiError, AtspiReader
from guiagent.envs.windows import window_pid_at

A11Y_TIMEOUT_S = 3.0
A11Y_FIRST_TIMEOUT_S = 10.0  # the first answer also starts the helper and joins the bus


class DesktopAccessibility:
    """The AT-SPI focus of the application at a point, through one helper process."""

    def __init__(self, display: str, bus_env: dict[str, str], timeout_s: float = A11Y_TIMEOUT_S):
        self.display = display
        self.reader = AtspiReader(
            env={**bus_env, "DISPLAY": display}, timeout_s=max(timeout_s, A11Y_FIRST_TIMEOUT_S)
        )
        self.timeout_s = timeout_s
        self.usable = True
        self._lock = threading.Lock()

    def focus_at(self, x: float, y: float) -> dict[str, Any] | None:
        """Blocking: ``{"app", "focused", "at_point"}`` or None (cannot tell here)."""
        with self._lock:
            if not self.usable:
                return None
            pid = window_pid_at(self.display, x, y)
            if pid is None:
                return None
            try:
                answer = self.reader.focus(pid, x, y)
                self.reader.timeout_s = self.timeout_s
            except AtspiError as exc:
                self.usable = False
                self.reader.close()
                logger.info("AT-SPI cannot be read ({}): typed text is checked by OCR", exc)
                return None
            return answer if answer.get("app") is not None else None

    def close(self) -> None:
        with self._lock:
            self.usable = False
            self.reader.close()


class AccessibleFocusMixin:
    """``accessible_focus(x, y)`` for :class:`~guiagent.envs.desktop.DesktopEnv`.

    ``atspi_env``: the environment that reaches the accessibility bus
    (``DBUS_SESSION_BUS_ADDRESS``); None: this process's, if it has one; ``{}``: never ask.
    """

    display: str | None
    atspi_env: dict[str, str] | None
    _a11y: DesktopAccessibility | None = None

    def _accessibility(self) -> DesktopAccessibility | None:
        if self._a11y is not None:
            return self._a11y if self._a11y.usable else None
        bus = self.atspi_env
        if bus is None:
            address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
            bus = {"DBUS_SESSION_BUS_ADDRESS": address} if address else {}
        if not self.display or not bus.get("DBUS_SESSION_BUS_ADDRESS"):
            return None
        self._a11y = DesktopAccessibility(self.display, bus)
        return self._a11y

    async def accessible_focus(self, x: float, y: float) -> dict[str, Any] | None:
        """The focused object of the application at screen point (x, y) and the text field
        there, from AT-SPI (see :class:`DesktopAccessibility`); None: cannot tell here."""
        a11y = self._accessibility()
        if a11y is None:
            return None
        return await asyncio.to_thread(a11y.focus_at, x, y)

    def _close_accessibility(self) -> None:
        a11y, self._a11y = self._a11y, None
        if a11y is not None:
            a11y.close()
