"""Page helpers of :class:`~guiagent.envs.browser.BrowserEnv`: key names, CDP ref lookup, the
focus probe and frame waits (split from ``browser.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from guiagent.core.actions import InvalidToolCall

# our key names (guiagent.core.actions.normalise_key) -> Playwright key names
_KEYS: dict[str, str] = {
    "ctrl": "Control",
    "alt": "Alt",
    "shift": "Shift",
    "command": "Meta",
    "win": "Meta",
    "enter": "Enter",
    "esc": "Escape",
    "tab": "Tab",
    "backspace": "Backspace",
    "delete": "Delete",
    "space": "Space",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "home": "Home",
    "end": "End",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "insert": "Insert",
    "capslock": "CapsLock",
    "+": "Shift+Equal",  # "+" is Playwright's chord separator
}


def playwright_key(key: str) -> str:
    """Map one of our key names to Playwright's; raise InvalidToolCall for unknown names."""
    if key in _KEYS:
        return _KEYS[key]
    if len(key) == 1:
        return key
    if key[0] == "f" and key[1:].isdigit() and 1 <= int(key[1:]) <= 24:
        return key.upper()
    raise InvalidToolCall(
        "key", f"unknown key name {key!r}; use names like ctrl, alt, shift, enter, esc, tab, f5, a"
    )


# modifier names of guiagent.core.actions.MODIFIERS -> Playwright key names
_MODIFIER_KEYS: dict[str, str] = {"ctrl": "Control", "shift": "Shift", "alt": "Alt", "meta": "Meta"}


@contextlib.asynccontextmanager
async def held_modifiers(
    page: Page, modifiers: Sequence[str], check: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    """Hold modifier keys down around the body (Playwright gives the mouse events their
    ctrlKey/shiftKey/... from the keyboard's state). Every key pressed is released again,
    in reverse order, whatever the body raises (the kill switch, a closed page).
    ``check`` runs once all keys are down, before the body: the kill switch."""
    pressed: list[str] = []
    try:
        for name in modifiers:
            key = _MODIFIER_KEYS[name]
            await page.keyboard.down(key)
            pressed.append(key)
        if check is not None and pressed:
            check()
        yield
    finally:
        for key in reversed(pressed):
            try:
                await page.keyboard.up(key)
            except PlaywrightError as exc:  # the page went away: no key is held on it
                logger.debug("releasing {} failed: {}", key, exc)


def _refs_to_backend_ids(root: dict[str, Any]) -> dict[int, int]:
    """ref -> backendNodeId of the nodes of a CDP DOM tree that carry ``data-guiagent-ref``."""
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        attributes = node.get("attributes") or []
        for i in range(0, len(attributes) - 1, 2):
            if attributes[i] == "data-guiagent-ref" and attributes[i + 1].isdigit():
                found[int(attributes[i + 1])] = int(node["backendNodeId"])
        stack.extend(node.get("children") or [])
        stack.extend(node.get("shadowRoots") or [])
        if node.get("contentDocument"):
            stack.append(node["contentDocument"])
    return found


_FOCUSED_AT_JS = """([x, y]) => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    if (!el || el === document.body || el === document.documentElement) return false;
    const editable = el.isContentEditable || ['INPUT', 'TEXTAREA'].includes(el.tagName);
    if (!editable) return false;
    const r = el.getBoundingClientRect();
    return x >= r.left && x < r.right && y >= r.top && y < r.bottom;
}"""


async def _next_frames(page: Page, count: int = 2) -> None:
    """Wait until the page has drawn ``count`` more frames (hover styles, scrolling)."""
    try:
        await page.evaluate(
            "(n) => new Promise((done) => { const tick = (k) => k ? requestAnimationFrame(() => tick(k - 1)) : done(); tick(n); })",
            count,
        )
    except PlaywrightError as exc:  # navigation mid-wait: nothing to wait for
        logger.debug("no frame to wait for: {}", exc)
