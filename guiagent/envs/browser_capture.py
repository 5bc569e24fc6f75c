"""The browser's viewport pixels at the floor: PNG straight from CDP, or the JPEG the model is sent.

``Page.captureScreenshot`` with Chromium's fast encoder (``optimizeForSpeed``) is lossless
and about 3x cheaper than Playwright's ``page.screenshot`` (which adds its own round trips,
caret hiding and a slower encoder). Where CDP is not available (another engine, a full-page
frame, an emulated device scale that CDP's plain capture ignores) Playwright's screenshot
is used instead, for the rest of the env's life.

The agent loop can also take the frame as Chromium's JPEG when the model is sent the frame
at its own size: no PNG to decode, nothing to resize or encode again. Frames stay in device
pixels (a frame the model gets smaller is captured losslessly and resized as before: a clip
with a scale would make the recorded frame the smaller image); a JPEG of another size than
the viewport's device pixels (an emulated device scale) ends the JPEG path for the env's life.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from guiagent.core.geometry import Size
from guiagent.envs.page_scripts import _PAGE_STATE_JS


class ViewportCapture:
    """Captures one page's viewport (``full_page``: the whole document, through Playwright)."""

    def __init__(self, timeout_ms: float) -> None:
        self.timeout_ms = timeout_ms
        self._cdp: Any = None  # the CDP session; False once it proved unusable here
        self.jpeg_usable = True  # False once a JPEG came back at a size other than asked

    def reset(self) -> None:
        self._cdp = None
        self.jpeg_usable = True

    async def viewport_jpeg(
        self, page: Page, view: dict[str, Any], fit: Callable[[Size], Size], quality: int
    ) -> tuple[dict[str, Any], bytes] | None:
        """The page state and a JPEG of the viewport, read in parallel, when the model is sent
        the frame at its own size; ``view``: the page state last seen (its size decides)."""
        for _ in range(2):  # the viewport resized since ``view``: once more
            size = device_size(view)
            if fit(size) != size:
                return None
            state, data = await asyncio.gather(
                page.evaluate(_PAGE_STATE_JS), self.jpeg(page, quality)
            )
            if data is None:
                return None
            if same_size(view, state):
                return state, data
            view = state
        return None

    def jpeg_fits(self, image: Image.Image, size: Size) -> bool:
        """Whether a JPEG came back at the viewport's device size (an emulated device scale
        gives CSS pixels: then no JPEG frames for the rest of the env's life)."""
        if abs(image.width - size.width) <= 1 and abs(image.height - size.height) <= 1:
            return True
        logger.debug("CDP gave a {}x{} JPEG for {}: no JPEG frames here", *image.size, size)
        self.jpeg_usable = False
        return False

    async def jpeg(self, page: Page, quality: int) -> bytes | None:
        """A JPEG of the viewport from Chromium's own encoder; None without CDP here."""
        if self._cdp is False or not self.jpeg_usable:
            return None
        params = {"format": "jpeg", "quality": quality, "optimizeForSpeed": True}
        try:
            if self._cdp is None:
                self._cdp = await page.context.new_cdp_session(page)
            shot = await self._cdp.send("Page.captureScreenshot", params)
        except PlaywrightError as exc:
            if page.is_closed():
                raise
            logger.debug("no CDP screenshots here ({}); using Playwright's", exc)
            self._cdp = False
            return None
        return base64.b64decode(shot["data"])

    async def png(self, page: Page, full_page: bool = False) -> bytes:
        """PNG bytes; a Playwright error about a dead page propagates."""
        if not full_page and self._cdp is not False:
            try:
                if self._cdp is None:
                    self._cdp = await page.context.new_cdp_session(page)
                shot = await self._cdp.send(
                    "Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}
                )
                return base64.b64decode(shot["data"])
            except PlaywrightError as exc:
                if page.is_closed():
                    raise
                logger.debug("no CDP screenshots here ({}); using Playwright's", exc)
                self._cdp = False
        return await page.screenshot(type="png", full_page=full_page, timeout=self.timeout_ms)

    @property
    def from_cdp(self) -> bool:
        return bool(self._cdp)

    def give_up_cdp(self) -> None:
        """CDP's capture proved wrong here (e.g. CSS pixels under an emulated device scale)."""
        self._cdp = False


def device_size(state: Mapping[str, Any]) -> Size:
    """The viewport of a page in ``state`` (page_state()) in device pixels: a frame's size."""
    dpr = float(state["dpr"])
    return Size(round(float(state["width"]) * dpr), round(float(state["height"]) * dpr))


def same_size(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two page states have the same viewport size and device scale."""
    return all(a.get(k) == b.get(k) for k in ("width", "height", "dpr"))


def decode_rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")
