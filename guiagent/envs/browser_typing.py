"""Typing into a page with real key events and no round trip per key.

Playwright's ``keyboard.type`` awaits Chromium's acknowledgement of every keydown and
keyup (about 5 ms a character). Here the same commands (guiagent.envs.browser_keys) go
over one CDP session of the page, all issued in order and then awaited together: the
page sees the same events in the same order. Where no CDP session can be had (another
engine, a run-server that refuses one) or Playwright's keyboard may still hold a key,
``page.keyboard.type`` types instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from guiagent.envs.browser_keys import type_commands


class PageTyping:
    """Types text into one page (the session is opened on first use and kept)."""

    def __init__(self) -> None:
        self._session: Any = None
        self._page: Page | None = None
        self.cdp_usable = True  # False once a CDP session was refused here
        # True once a keyboard.down/press of Playwright failed midway: its keyboard may
        # then hold a modifier that keyboard.type would honour, so Playwright types
        self.keys_may_be_held = False
        self.chunks_over_cdp = 0  # texts typed over the CDP session (the rest: page.keyboard)

    def reset(self) -> None:
        """Forget the session (the env closed or its page changed)."""
        self._session = self._page = None

    async def type(self, page: Page, text: str) -> None:
        """Type ``text`` as ``page.keyboard.type`` does; a failed key event raises."""
        session = await self._session_for(page)
        if session is None:
            await page.keyboard.type(text)
            return
        commands = type_commands(text)
        sends = [session.send(method, params) for method, params in commands]
        results = await asyncio.gather(*sends, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._forget(session)  # the next text opens a fresh session
            first = errors[0]
            if isinstance(first, asyncio.CancelledError):
                raise first
            raise PlaywrightError(
                f"typing failed: {len(errors)} of {len(commands)} key events were refused "
                f"({str(first).splitlines()[0] if str(first) else type(first).__name__})"
            ) from first
        self.chunks_over_cdp += 1

    async def _session_for(self, page: Page) -> Any:
        if not self.cdp_usable or self.keys_may_be_held:
            return None
        if self._session is not None and self._page is page:
            return self._session
        try:
            session = await page.context.new_cdp_session(page)
        except PlaywrightError as exc:
            if page.is_closed():
                raise
            logger.debug("no CDP session for typing ({}): typing through page.keyboard", exc)
            self.cdp_usable = False
            return None
        session.on("close", lambda _: self._forget(session))  # detached: never used again
        self._session, self._page = session, page
        return session

    def _forget(self, session: Any) -> None:
        if self._session is session:
            self.reset()
