"""Page helpers of :class:`~guiagent.envs.browser.BrowserEnv`: key names, CDP ref lookup, the
focus probe and frame waits (split from ``browser.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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


# Whether a move can draw anything before a press: only a :hover style can (a mouseover
# handler runs as the move is delivered), so a page whose style sheets have no :hover rule
# needs no frame between them. Unknown (shadow roots keep their own styles, cross-origin
# sheets cannot be read, the page is not instrumented): true.
_HOVER_STYLED_FN = """() => {
    const hoverIn = (rules) => { for (const r of rules) {
      if (r.selectorText && r.selectorText.includes(':hover')) return true;
      if (r.cssRules && hoverIn(r.cssRules)) return true; } return false; };
    const q = window.__guiagentQuiet;
    if (!q || q.shadows !== 0) return true;
    for (const sheet of [...document.styleSheets, ...(document.adoptedStyleSheets || [])]) {
      try { if (hoverIn(sheet.cssRules)) return true; } catch (e) { return true; }
    }
    return false;
}"""
HOVER_STYLED_JS = f"({_HOVER_STYLED_FN})()"

# Resolves two frames after the one in which the page handled the next mouse move (the
# hover state is on screen), at the latest four frames after it was set up (the move landed
# in an iframe, or the pointer did not move, so no mousemove reached this document); at
# once on a page whose style sheets have no :hover rule.
_MOVE_DRAWN_JS = (
    """() => new Promise((done) => {
    const hoverStyled = """
    + _HOVER_STYLED_FN
    + """;
    if (!hoverStyled()) { done(); return; }
    let over = false;
    const finish = () => { if (!over) { over = true; removeEventListener('mousemove', seen, true); done(); } };
    // two frames after the one that handled the move (a hover image may still be loading)
    const frames = (n, then) => requestAnimationFrame(() => n > 1 ? frames(n - 1, then) : then());
    const seen = () => frames(3, finish);
    addEventListener('mousemove', seen, {capture: true, once: true});
    frames(4, finish);
})"""
)


async def move_and_draw(page: Page, x: float, y: float) -> None:
    """Move the pointer to (x, y) and wait until the page drew its hover state: the wait is
    sent before the move and counts frames from the one that handled the move, so a press
    after it lands on what the hover state shows (an icon that swaps its image on
    ``:hover``). On a page without ``:hover`` rules the wait ends at once."""
    await _input_then_wait(page, _MOVE_DRAWN_JS, None, page.mouse.move(x, y))


HOVER_HINT_TTL_S = 0.1  # an answer older than this is asked again


class HoverAnswer:
    """The page's answer to HOVER_STYLED_JS from a read made just before a press (see
    guiagent.core.env.HoverHint): used by the next action only, within HOVER_HINT_TTL_S."""

    def __init__(self) -> None:
        self._answer: tuple[bool, float] | None = None  # (styled, when told)

    def note(self, styled: bool) -> None:
        self._answer = (bool(styled), time.monotonic())

    def take(self) -> bool | None:
        answer, self._answer = self._answer, None
        if answer is None or time.monotonic() - answer[1] > HOVER_HINT_TTL_S:
            return None
        return answer[0]


async def hover_styled(page: Page) -> bool:
    """Whether a pointer move may draw something before a press (see _HOVER_STYLED_FN);
    true when the page cannot tell (navigating)."""
    try:
        return bool(await page.evaluate(HOVER_STYLED_JS))
    except PlaywrightError as exc:
        logger.debug("hover styles unknown: {}", exc)
        return True


async def before_press(page: Page, x: float, y: float, styled: bool | None = None) -> None:
    """Before a press at (x, y) that moves there itself (``mouse.click``/``dblclick``: one
    message, Playwright sends its move, down and up without waiting for each acknowledgement).

    On a page with ``:hover`` rules the pointer is moved first and the press waits until the
    page drew its hover state (:func:`move_and_draw`). On a page without them nothing can be
    drawn between move and press: nothing to do (no separate move, whose acknowledgement
    Chromium gives only at its next frame, about 16 ms). ``styled``: the answer of a page
    read made just before (see :class:`~guiagent.core.env.HoverHint`); None: asked here."""
    if styled is None:
        styled = await hover_styled(page)
    if styled:
        await move_and_draw(page, x, y)


# Resolves once the page received the next wheel event and drew a frame after it (at the
# latest after WHEEL_WAIT_MS: the wheel went to an iframe, or the page cannot tell).
_WHEEL_SEEN_JS = """(ms) => new Promise((done) => {
    let over = false, limit = 0;
    const finish = () => {
      if (over) return;
      over = true; clearTimeout(limit); removeEventListener('wheel', seen, true); done();
    };
    const seen = () => requestAnimationFrame(() => setTimeout(finish, 0));
    addEventListener('wheel', seen, {capture: true, once: true, passive: true});
    limit = setTimeout(finish, ms);  // cleared at the end: not a timer a settle waits for
})"""
WHEEL_WAIT_MS = 250


async def wheel_and_wait(page: Page, dx: float, dy: float) -> None:
    """Turn the wheel and wait until the page has the wheel event: Chromium acknowledges a
    wheel before the page handles it, so a settle right after could start before the scroll
    (the page's own settle then waits for the scroll to end, see browser_quiet)."""
    await _input_then_wait(page, _WHEEL_SEEN_JS, WHEEL_WAIT_MS, page.mouse.wheel(dx, dy))


async def _input_then_wait(page: Page, wait_js: str, arg: Any, send: Awaitable[None]) -> None:
    """Set up the page-side wait ``wait_js`` first, then send the input, then await the
    wait (so the page cannot handle the input before it listens): both run as tasks, the
    wait's made first, so its message leaves first."""
    waiting = asyncio.ensure_future(page.evaluate(wait_js, arg))
    sending = asyncio.ensure_future(send)
    try:
        await waiting
    except PlaywrightError as exc:  # navigation mid-wait: nothing to wait for
        logger.debug("no page-side wait: {}", exc)
    finally:
        await sending
