"""Starting Chromium for :class:`~guiagent.envs.browser.BrowserEnv`: its executable, its
flags, one shared browser for several environments (split from ``browser.py``)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from playwright.async_api import Browser, Playwright, async_playwright

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
)


def chromium_executable() -> str | None:
    """Playwright's own Chromium when installed, else a system Chromium, else None."""
    roots = [
        os.environ.get("PLAYWRIGHT_BROWSERS_PATH", ""),
        str(Path.home() / ".cache" / "ms-playwright"),
    ]
    for root in filter(None, roots):
        for pattern in (
            "chromium-*/chrome-linux*/chrome",
            "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
        ):
            found = sorted(glob.glob(os.path.join(root, pattern)))
            if found:
                return found[-1]
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


async def launch_chromium(
    headless: bool = True, executable_path: str | None = None
) -> tuple[Playwright, Browser]:
    """Start Playwright and one Chromium to share between several BrowserEnvs (one context each).

    The caller closes both: ``await browser.close(); await playwright.stop()``.
    """
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            headless=headless,
            executable_path=executable_path or chromium_executable(),
            args=list(CHROMIUM_ARGS),
        )
    except BaseException:
        await playwright.stop()
        raise
    return playwright, browser
