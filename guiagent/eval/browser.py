"""Launch headless Chromium for evaluation pages (Playwright's own build, else Debian's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.async_api import Browser, Playwright

SYSTEM_CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
)


def system_chromium() -> str | None:
    """Debian's chromium when Playwright's own browser is not installed."""
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


def _playwright_has_chromium(playwright: Playwright) -> bool:
    try:
        return Path(playwright.chromium.executable_path).exists()
    except Exception:  # the path lookup itself fails when no browser was downloaded
        return False


async def launch_chromium(playwright: Playwright) -> Browser:
    if _playwright_has_chromium(playwright) and not os.environ.get("GUIAGENT_CHROMIUM"):
        return await playwright.chromium.launch(headless=True, args=list(SYSTEM_CHROMIUM_ARGS[1:]))
    executable = os.environ.get("GUIAGENT_CHROMIUM") or system_chromium()
    if executable is None:
        raise RuntimeError(
            "no Chromium found: install Playwright's browser (playwright install chromium) "
            "or Debian's chromium, or set GUIAGENT_CHROMIUM to an executable"
        )
    return await playwright.chromium.launch(
        headless=True, executable_path=executable, args=list(SYSTEM_CHROMIUM_ARGS)
    )
