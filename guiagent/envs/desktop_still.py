"""Waiting for the desktop to stay still, cheaply (the desktop's side of settling).

What is compared: small grayscale thumbnails (:func:`guiagent.core.change.bgra_thumbnail`)
of mss grabs of the region that matters (the captured monitor, or a box the caller names),
never encoded screenshots of the whole screen. When to look: on X11 the DAMAGE extension
says when something was drawn (:class:`guiagent.envs.xdamage.DamageWatch`), so a still
screen costs two grabs (the reference, and one last look when the still window is over, so
drawing DAMAGE did not report still shows) and no CPU in between; in between, the screen is
looked at only after drawing, at most every ``poll_ms``. Without DAMAGE the thumbnails are polled every
``poll_ms``. Drawing that leaves the pixels as they were (a widget repainted the same, a
caret, a small spinner under ``threshold``) does not restart the still window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from loguru import logger

from guiagent.core.change import bgra_thumbnail, thumbnail_difference

Region = tuple[int, int, int, int]  # left, top, width, height in root (grab) pixels
BURST_GAP_S = 0.012  # this long without drawing ends a burst of DAMAGE events


class ScreenStill:
    """``grab(region) -> (bgra bytes, width, height)`` runs on the caller's thread (mss
    handles belong to their thread); ``display``: the X display for DAMAGE (None: poll)."""

    def __init__(self, grab: Callable[[Region], tuple[Any, int, int]], display: str | None):
        self.grab = grab
        self._cancel = threading.Event()  # set from another thread: the waiter gave up
        self._damage: Any = None
        if display:
            try:
                from guiagent.envs.xdamage import DamageWatch

                self._damage = DamageWatch(display)
            except Exception as exc:  # no DAMAGE on this server, or Xlib refused: poll
                logger.debug("no DAMAGE events on {} ({}); settling by polling grabs", display, exc)

    @property
    def how(self) -> str:
        return "xdamage" if self._damage is not None else "grabs"

    def _thumb(self, region: Region) -> np.ndarray:
        raw, width, height = self.grab(region)
        return bgra_thumbnail(raw, width, height)

    def wait(
        self,
        quiet_ms: float,
        timeout_s: float,
        region: Region,
        threshold: float = 0.002,
        poll_ms: float = 50,
    ) -> dict[str, Any]:
        """Block until ``region`` stays within ``threshold`` (fraction of thumbnail pixels)
        of a reference for ``quiet_ms``, or ``timeout_s`` passes (``settled`` False)."""
        start = time.monotonic()
        self._cancel.clear()
        if self._damage is not None:
            self._damage.clear()
        reference = self._thumb(region)
        grabs, events, late = 1, 0, 0  # late: changes only the last look saw
        quiet_since = last_grab = time.monotonic()
        while True:
            now = time.monotonic()
            over = now - start >= timeout_s or self._cancel.is_set()
            if (now - quiet_since) * 1000 >= quiet_ms and self._damage is not None and not over:
                # one look before trusting the silence: drawing DAMAGE did not report (a GL
                # compositor's path, say) still shows in the pixels
                current = self._thumb(region)
                grabs += 1
                last_grab = time.monotonic()
                if thumbnail_difference(reference, current) > threshold:
                    reference, quiet_since = current, last_grab
                    late += 1
                    continue
            if (now - quiet_since) * 1000 >= quiet_ms or over:
                settled = (now - quiet_since) * 1000 >= quiet_ms
                return {
                    "settled": settled,
                    "waited_ms": (now - start) * 1000,
                    "polls": grabs,
                    "events": events,
                    "last_look_changes": late,
                    "how": self.how,
                }
            # wake at least every 100 ms: a waiter that gave up frees the thread soon
            until = min(quiet_since + quiet_ms / 1000, start + timeout_s, now + 0.1)
            if self._damage is not None:
                hits = self._damage.damaged(until - now, region)
                if not hits:
                    continue  # nothing drawn: the window ran out, or the run's time did
                events += hits
                events += self._rest_of_burst(min(until, time.monotonic() + poll_ms / 1000), region)
                # drawing goes on: look at most every poll_ms (the first look is at once)
                pause = last_grab + poll_ms / 1000 - time.monotonic()
                if pause > 0:
                    time.sleep(min(pause, max(until - time.monotonic(), 0.0)))
            else:
                time.sleep(max(min(poll_ms / 1000, until - now), 0.0))
            current = self._thumb(region)
            grabs += 1
            last_grab = time.monotonic()
            if thumbnail_difference(reference, current) > threshold:
                reference, quiet_since = current, last_grab

    def _rest_of_burst(self, until: float, region: Region) -> int:
        """Drawing comes in bursts: a window mapped is reported for its own area, then a few
        ms later for what around it was repainted. Read on until BURST_GAP_S passes with
        nothing drawn (or ``until``), so the look sees the whole burst, not half of it
        followed by a second look poll_ms later."""
        hits = 0
        while (left := until - time.monotonic()) > 0:
            more = self._damage.damaged(min(BURST_GAP_S, left), region)
            if not more:
                break
            hits += more
        return hits

    def cancel(self) -> None:
        """End a wait running on another thread (it returns unsettled)."""
        self._cancel.set()

    def close(self) -> None:
        if self._damage is not None:
            self._damage.close()
            self._damage = None
