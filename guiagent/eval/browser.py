"""Launch headless Chromium for evaluation pages (Playwright's own build, else the system's)."""

from __future__ import annotations

from playwright.async_api import Browser, Playwright

from guiagent.envs.browser import CHROMIUM_ARGS, chromium_executable


class NoChromiumError(RuntimeError):
    """No Chromium to run evaluation pages in."""


async def launch_chromium(playwright: Playwright) -> Browser:
    executable = chromium_executable()
    if executable is None:
        raise NoChromiumError(
            "no Chromium found: install Playwright's browser (playwright install chromium) "
            "or the system's chromium package"
        )
    return await playwright.chromium.launch(
        headless=True, executable_path=executable, args=list(CHROMIUM_ARGS)
    )
