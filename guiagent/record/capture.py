"""Capture only the screen region a replay check needs.

A strict replay looks at the pixels around each target before acting. A full observe()
of a browser viewport (PNG screenshot + page-state round trip) costs most of a replay's
time, so for a Playwright page (an env with a ``page`` attribute, not in full-page mode)
the region is grabbed alone: Chromium's ``Page.captureScreenshot`` over CDP with a clip
and ``optimizeForSpeed`` (measured here: cheaper than ``page.screenshot()`` of the same
clip, which first waits for fonts and hides the caret) when the device pixel ratio is 1
(a clipped CDP capture resets the device scale factor Playwright emulates), else
Playwright's ``page.screenshot(clip=...)``, else a full ``observe()`` cropped. Other environments
(the desktop: mss grabs the screen in a few ms) go through ``observe()``.

Regions are given in screen coordinates (CSS pixels of the viewport in a browser). The
returned image may be at another resolution than the recorded crop (the CDP path returns
CSS pixels, whatever the device pixel ratio): callers compare both at the smaller size.
"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

from loguru import logger
from PIL import Image

from guiagent.core.env import Environment, Frame, FullPageSource, PageHolder
from guiagent.core.geometry import Point

ScreenBox = tuple[float, float, float, float]  # x1, y1, x2, y2 in screen coordinates


def frame_box_to_screen(box: list[int] | tuple[int, ...], origin: Point, scale: float) -> ScreenBox:
    """A frame-pixel box [x1, y1, x2, y2] of a recorded frame in screen coordinates."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        origin.x + x1 / scale,
        origin.y + y1 / scale,
        origin.x + x2 / scale,
        origin.y + y2 / scale,
    )


def crop_screen_box(frame: Frame, box: ScreenBox) -> Image.Image:
    """The part of ``frame`` covering the screen box (clamped to the frame)."""
    a = frame.transform.screen_to_frame(Point(box[0], box[1]))
    b = frame.transform.screen_to_frame(Point(box[2], box[3]))
    x1, y1 = max(0, round(a.x)), max(0, round(a.y))
    x2, y2 = min(frame.image.width, round(b.x)), min(frame.image.height, round(b.y))
    return frame.image.crop((x1, y1, max(x1 + 1, x2), max(y1 + 1, y2)))


class RegionCapture:
    """Grabs screen regions of one environment; picks the cheapest way it supports."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._cdp: Any = None
        self._cdp_failed = False
        self._scroll = (0.0, 0.0)
        self._dpr = 1.0
        full_page = isinstance(env, FullPageSource) and env.full_page
        page = env.page if isinstance(env, PageHolder) and not full_page else None
        self._page: Any = page if page is not None and hasattr(page, "screenshot") else None
        self.method = "cdp" if self._page is not None else "observe"

    @property
    def partial(self) -> bool:
        """True when grab() captures only the region (a browser page)."""
        return self._page is not None

    async def grab(self, box: ScreenBox) -> Image.Image:
        if self._page is None:
            return crop_screen_box(await self.env.observe(), box)
        clip = {
            "x": max(0.0, box[0]),
            "y": max(0.0, box[1]),
            "width": max(1.0, box[2] - max(0.0, box[0])),
            "height": max(1.0, box[3] - max(0.0, box[1])),
        }
        if not self._cdp_failed:
            image = await self._grab_cdp(clip)
            if image is not None:
                return image
        self.method = "screenshot"
        png = await self._page.screenshot(type="png", clip=clip)
        return Image.open(io.BytesIO(png)).convert("RGB")

    async def _grab_cdp(self, clip: dict[str, float]) -> Image.Image | None:
        try:
            if self._cdp is None:
                self._cdp = await self._page.context.new_cdp_session(self._page)
                state = await self._page.evaluate(
                    "() => [window.scrollX, window.scrollY, window.devicePixelRatio]"
                )
                self._scroll, self._dpr = (float(state[0]), float(state[1])), float(state[2])
                if self._dpr != 1.0:
                    # a clipped CDP capture resets the emulated device scale factor that
                    # Playwright set (the page's devicePixelRatio drops to 1): leave it alone
                    raise RuntimeError(f"device pixel ratio {self._dpr:g}")
            # CDP clips are in document coordinates: add the viewport's scroll offset. It is
            # read beside the capture (one round trip instead of two) and the capture is
            # taken again in the rare case the page scrolled since the last grab.
            while True:
                scroll, dpr = self._scroll, self._dpr  # dpr is 1 here (see above)
                reply, now = await asyncio.gather(
                    self._cdp.send(
                        "Page.captureScreenshot",
                        {
                            "format": "png",
                            "clip": {
                                **clip,
                                "x": clip["x"] + scroll[0],
                                "y": clip["y"] + scroll[1],
                                "scale": 1,
                            },
                            "optimizeForSpeed": True,
                            "captureBeyondViewport": False,
                        },
                    ),
                    self._page.evaluate(
                        "() => [window.scrollX, window.scrollY, window.devicePixelRatio]"
                    ),
                )
                self._scroll, self._dpr = (float(now[0]), float(now[1])), float(now[2])
                if self._scroll == scroll and self._dpr == dpr:
                    break
        except Exception as exc:  # not Chromium, or a remote browser without CDP: use Playwright's
            logger.debug("CDP region capture unavailable ({}); using page.screenshot", exc)
            self._cdp_failed = True
            return None
        return Image.open(io.BytesIO(base64.b64decode(reply["data"]))).convert("RGB")

    async def close(self) -> None:
        if self._cdp is not None:
            try:
                await self._cdp.detach()
            except Exception as exc:  # the page may be gone already
                logger.debug("detaching the CDP session: {}", exc)
            self._cdp = None
