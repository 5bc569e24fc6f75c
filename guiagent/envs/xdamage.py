"""Wait for the X screen to stay still from DAMAGE events, not by grabbing pixels.

The X server tells a client every rectangle drawn into a drawable it watches (the DAMAGE
extension; Xorg and Xvfb have it). Watching the root window reports drawing anywhere on
screen, so "still for N ms" is a blocking ``select`` on the connection with a deadline: no
grabs, no CPU while nothing moves. The installed python-xlib fork (python3-xlib 0.15) has
no DAMAGE module, so its four requests and one event are declared here with python-xlib's
own protocol toolkit (as python-xlib 0.33's ``Xlib.ext.damage`` does).
"""

from __future__ import annotations

import select
import time
from typing import Any

from Xlib.protocol import rq, structs

EXTENSION = "DAMAGE"
_REPORT_RAW_RECTANGLES = 0  # one event per rectangle drawn


class _QueryVersion(rq.ReplyRequest):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(0),
        rq.RequestLength(),
        rq.Card32("major_version"),
        rq.Card32("minor_version"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Pad(1),
        rq.Card16("sequence_number"),
        rq.ReplyLength(),
        rq.Card32("major_version"),
        rq.Card32("minor_version"),
        rq.Pad(16),
    )


class _Create(rq.Request):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(1),
        rq.RequestLength(),
        rq.Card32("damage"),
        rq.Drawable("drawable"),
        rq.Card8("level"),
        rq.Pad(3),
    )


class _Destroy(rq.Request):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(2),
        rq.RequestLength(),
        rq.Card32("damage"),
    )


class DamageNotify(rq.Event):
    _code = None
    _fields = rq.Struct(
        rq.Card8("type"),
        rq.Card8("level"),
        rq.Card16("sequence_number"),
        rq.Drawable("drawable"),
        rq.Card32("damage"),
        rq.Card32("timestamp"),
        rq.Object("area", structs.Rectangle),
        rq.Object("geometry", structs.Rectangle),
    )


class DamageWatch:
    """DAMAGE events for the whole screen on its own X connection (events are read from
    the connection that asked for them). :meth:`wait_still` blocks the calling thread.

    Raises :class:`RuntimeError` when the server has no DAMAGE extension."""

    def __init__(self, display_name: str) -> None:
        from Xlib import display as xdisplay

        self._dpy: Any = xdisplay.Display(display_name)
        try:
            info = self._dpy.query_extension(EXTENSION)
            if info is None or not info.present:
                raise RuntimeError(f"X display {display_name} has no DAMAGE extension")
            self._major = info.major_opcode
            self._dpy.display.set_extension_major(EXTENSION, self._major)
            # python-xlib keeps the event classes in one dict shared by every Display of
            # the process, and its RANDR module claims four event codes where the server
            # gives RANDR two: the two after them are the next extension's (DAMAGE's on
            # Xvfb). Any Display opened later (another X client of this process) would
            # then turn our DamageNotify events into RANDR ones. This connection parses
            # with its own table.
            self._dpy.display.event_classes = dict(self._dpy.display.event_classes)
            self._dpy.extension_add_event(info.first_event, DamageNotify)
            self._event_code = info.first_event
            _QueryVersion(
                display=self._dpy.display, opcode=self._major, major_version=1, minor_version=1
            )
            self._damage = self._dpy.display.allocate_resource_id()
            _Create(
                display=self._dpy.display,
                opcode=self._major,
                damage=self._damage,
                drawable=self._dpy.screen().root,
                level=_REPORT_RAW_RECTANGLES,
            )
            self._dpy.sync()
        except BaseException:
            self._dpy.close()
            raise

    def _drain(self, region: tuple[int, int, int, int] | None) -> int:
        """Read every queued event; how many damaged the region (all: region None)."""
        hits = 0
        while self._dpy.pending_events():
            event = self._dpy.next_event()
            if event.type != self._event_code:
                continue
            if region is None or _overlaps(event.area, region):
                hits += 1
        return hits

    def clear(self) -> None:
        """Forget what was drawn until now (the server has sent it all after the sync)."""
        self._dpy.sync()
        self._drain(None)

    def damaged(self, timeout_s: float, region: tuple[int, int, int, int] | None = None) -> int:
        """Block up to ``timeout_s`` for drawing in ``region`` (x, y, width, height in root
        pixels; None: anywhere); how many rectangles were drawn there (0: none)."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            hits = self._drain(region)
            left = deadline - time.monotonic()
            if hits or left <= 0:
                return hits
            select.select([self._dpy.fileno()], [], [], left)

    def close(self) -> None:
        try:
            _Destroy(display=self._dpy.display, opcode=self._major, damage=self._damage)
            self._dpy.close()
        except Exception:  # the server may be gone already
            pass


def _overlaps(area: Any, region: tuple[int, int, int, int]) -> bool:
    x, y, w, h = region
    return (
        area.x < x + w and x < area.x + area.width and area.y < y + h and y < area.y + area.height
    )
