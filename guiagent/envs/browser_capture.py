"""The browser's viewport pixels at the floor: PNG straight from CDP.

``Page.captureScreenshot`` with Chromium's fast encoder (``optimizeForSpeed``) is lossless
and about 3x cheaper than Playwright's ``page.screenshot`` (which adds its own round trips,
caret hiding and a slower encoder). Where CDP is not available (another engine, a full-page
frame, an emulated device scale that CDP's plain capture ignores) Playwright's screenshot
is used instead, for the rest of the env's life.
"""

from __future__ import annotations

import base64
from typing import Any

from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page


class ViewportCapture:
    """Captures one page's viewport (``full_page``: the whole document, through Playwright)."""

    def __init__(self, timeout_ms: float) -> None:
        self.timeout_ms = timeout_ms
        self._cdp: Any = None  # the CDP session; False once it proved unusable here

    def reset(self) -> None:
        self._cdp = None

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
